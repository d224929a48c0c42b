"""tpflax's copy of tools/golden/weights.py's tensorpack model (Net.build_graph)."""

from __future__ import annotations

import jax

import tpflax as tp

SHAPE = (4, 6, 6, 3)


def net(image):
    l = tp.Conv2D("conv0", image, 4, 3, activation=jax.nn.relu)
    l = tp.BatchNorm("bn", l)
    return tp.FullyConnected("fc", tp.GlobalAvgPooling("gap", l), 3)
