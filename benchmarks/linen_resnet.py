"""The comparison point for tpflax's overhead: tensorpack's ImageNet ResNet (post-activation,
stride on the 3x3, ``tp.zoo.resnet``'s structure) hand-written in plain flax.linen, the way a
flax user would write it: ``nn.Conv`` (so ``lax.conv_general_dilated`` everywhere),
``nn.BatchNorm`` (momentum 0.9, epsilon 1e-5, as tensorpack), ``nn.max_pool``, ``nn.Dense``;
``dtype`` is flax's compute dtype (float32 weights kept; bfloat16 for mixed precision).
It computes the same function as the zoo model at the same cost in FLOPs; benchmarks/
vs_tensorpack.py times it beside tpflax and tensorpack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from tpflax.zoo._common import MEAN_RGB, STD_RGB

STAGES = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}


class Block(nn.Module):
    """A basic block (ResNet-18/34) or a bottleneck (50+), BatchNorm after each conv."""

    features: int
    stride: int
    bottleneck: bool
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        bn = lambda zero=False: nn.BatchNorm(  # noqa: E731
            use_running_average=not train,
            momentum=0.9,
            epsilon=1e-5,
            dtype=self.dtype,
            scale_init=nn.initializers.zeros if zero else nn.initializers.ones,
        )
        conv = lambda f, k, s=1: nn.Conv(  # noqa: E731
            f, (k, k), (s, s), padding="SAME", use_bias=False, dtype=self.dtype
        )
        out = self.features * (4 if self.bottleneck else 1)
        if self.bottleneck:
            y = nn.relu(bn()(conv(self.features, 1)(x)))
            y = nn.relu(bn()(conv(self.features, 3, self.stride)(y)))
            y = bn(zero=True)(conv(out, 1)(y))
        else:
            y = nn.relu(bn()(conv(self.features, 3, self.stride)(x)))
            y = bn(zero=True)(conv(out, 3)(y))
        if x.shape[-1] != out:
            x = bn()(conv(out, 1, self.stride)(x))
        return nn.relu(y + x)


class ResNet(nn.Module):
    depth: int = 50
    num_classes: int = 1000
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, image: jax.Array, train: bool = False) -> jax.Array:
        mean = jnp.asarray(MEAN_RGB[::-1], jnp.float32) * 255.0
        std = jnp.asarray(STD_RGB[::-1], jnp.float32) * 255.0
        x = (image.astype(jnp.float32) - mean) / std
        x = nn.Conv(64, (7, 7), (2, 2), padding="SAME", use_bias=False, dtype=self.dtype)(x)
        x = nn.relu(
            nn.BatchNorm(
                use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype
            )(x)
        )
        x = nn.max_pool(x, (3, 3), (2, 2), padding="SAME")
        stages: Sequence[int] = STAGES[self.depth]
        for g, (features, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2))):
            for i in range(stages[g]):
                x = Block(features, stride if i == 0 else 1, self.depth >= 50, self.dtype)(x, train)
        return nn.Dense(self.num_classes, dtype=self.dtype)(x.mean(axis=(1, 2)))
