"""The tpflax half of the weights round trip (run by `make golden` in `.venv`, between
`weights.py train` and `weights.py roundtrip`).

Loads tensorpack's TF checkpoint with tpflax, restores it into tpflax's copy of the model and
writes it back with `tp.checkpoint.save_npz` and `save_tf_checkpoint`. `weights.py roundtrip`
then loads both files in tensorpack / TensorFlow. The test (tests/test_checkpoint_golden.py)
checks that tensorpack logged no warning and computed the logits tpflax computes.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp

import tpflax as tp

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests"))
from weights_model import SHAPE, net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="tests/golden/weights")
    args = parser.parse_args()
    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), jnp.zeros(SHAPE))
    params, state, report = tp.checkpoint.restore(
        os.path.join(args.dir, "model-3"), params, state, strict=True
    )
    print(report)
    tp.checkpoint.save_npz(os.path.join(args.dir, "tpflax-export.npz"), params, state)
    tf_dir = os.path.join(args.dir, "tpflax-export-tf")
    os.makedirs(tf_dir, exist_ok=True)
    tp.checkpoint.save_tf_checkpoint(
        os.path.join(tf_dir, "model"), tp.checkpoint.flatten(params, state)
    )


if __name__ == "__main__":
    main()
