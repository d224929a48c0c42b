"""BatchNorm's inference affine and ReLU fused into oneDNN's convolution (tpflax/_src/epilogue.py).

The unfused path is the reference: its values are pinned to tensorpack by the layer and zoo
goldens (which run fused too, under 'auto'). Here: the same values fused, one convolution per
layer in the compiled program, and the cases that must not fuse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpflax as tp
from tpflax._src import epilogue, onednn

pytestmark = pytest.mark.skipif(
    not onednn.available(), reason="oneDNN extension not built or not on CPU"
)

FUSED = '"tpflax_onednn_conv_fwd_post"'
PLAIN = '"tpflax_onednn_conv_fwd"'
RTOL = 1e-6  # one float32 rounding (oneDNN may contract a multiply and an add)


def bn_only(x: jax.Array) -> jax.Array:  # tensorpack's get_bn(): a lambda around BatchNorm
    return tp.BatchNorm("bn", x)


def net(data_format: str, activation_3: Any = jax.nn.relu) -> Callable[[jax.Array], jax.Array]:
    def model(x: jax.Array) -> jax.Array:
        with (
            tp.argscope([tp.Conv2D, tp.BatchNorm], data_format=data_format),
            tp.argscope(tp.Conv2D, use_bias=False),
        ):
            l = tp.Conv2D("conv0", x, 16, 3, activation=tp.BNReLU)
            l = tp.Conv2D("conv1", l, 16, 3, strides=2, activation=bn_only)
            l = tp.Conv2D("conv2", l, 16, 3, split=2, activation=tp.BNReLU)
            return tp.Conv2D("conv3", l, 8, 1, use_bias=True, activation=activation_3)

    return model


def variables(model: Any, x: jax.Array) -> tuple[Any, Any]:
    """Initial variables moved off their defaults (the EMA is 0 and 1, gamma 1, beta 0)."""
    params, state = model.init(jax.random.key(0), x)
    leaves, tree = jax.tree.flatten((params, state))
    keys = jax.random.split(jax.random.key(1), len(leaves))
    moved = [v + 0.3 * jax.random.uniform(k, v.shape) for v, k in zip(leaves, keys, strict=True)]
    return jax.tree.unflatten(tree, moved)


def compiled(model: Any, params: Any, state: Any, x: jax.Array, fuse: bool = True) -> Any:
    def infer(p: Any, s: Any, x: jax.Array) -> jax.Array:
        with tp.conv_impl("onednn"), epilogue.fusing(fuse):
            return model.apply(p, s, x)[0]

    return jax.jit(infer).lower(params, state, x).compile()


def close(got: Any, want: Any, rtol: float = RTOL) -> None:
    scale = float(np.max(np.abs(want)))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_one_fused_call_per_layer_with_the_unfused_values(data_format: str) -> None:
    model = tp.transform(net(data_format))
    shape = (2, 12, 12, 4) if data_format == "NHWC" else (2, 4, 12, 12)
    x = jax.random.normal(jax.random.key(2), shape)
    params, state = variables(model, x)
    fused = compiled(model, params, state, x)
    unfused = compiled(model, params, state, x, fuse=False)
    # BNReLU, BatchNorm alone, BNReLU on a grouped convolution, bias + ReLU: all four fused,
    # and the convolutions they replace dropped from the program.
    assert fused.as_text().count(FUSED) == 4
    assert fused.as_text().count(PLAIN) == 0
    assert unfused.as_text().count(FUSED) == 0
    close(fused(params, state, x), unfused(params, state, x))


def test_gradients_and_vmap_of_the_fused_model_are_the_unfused_ones() -> None:
    model = tp.transform(net("NHWC"))
    x = jax.random.normal(jax.random.key(2), (2, 12, 12, 4))
    params, state = variables(model, x)

    def loss(p: Any, x: jax.Array, fuse: bool) -> jax.Array:
        with tp.conv_impl("onednn"), epilogue.fusing(fuse):
            return jnp.sum(model.apply(p, state, x)[0] ** 2)

    # differentiated in inference mode (e.g. a frozen backbone): the fused calls' derivative
    # is the unfused steps'
    for g, want in zip(
        jax.tree.leaves(jax.jit(jax.grad(loss), static_argnums=2)(params, x, True)),
        jax.tree.leaves(jax.jit(jax.grad(loss), static_argnums=2)(params, x, False)),
        strict=True,
    ):
        close(g, want, 1e-5)

    def batched(fuse: bool) -> jax.Array:
        return jax.vmap(jax.jit(lambda x: loss(params, x, fuse)))(jnp.stack([x, 2 * x]))

    close(batched(True), batched(False))


def test_eager_training_and_shared_outputs_are_not_fused() -> None:
    model = tp.transform(net("NHWC"))
    x = jax.random.normal(jax.random.key(2), (2, 12, 12, 4))
    params, state = variables(model, x)
    one = tp.transform(lambda x: tp.Conv2D("conv", x, 8, 3, activation=tp.BNReLU))
    p1, s1 = variables(one, x)
    want = compiled(one, p1, s1, x, fuse=False)(p1, s1, x)
    with tp.conv_impl("onednn"):
        # eagerly nothing would drop the unfused call: none is made, the values are the same
        close(one.apply(p1, s1, x)[0], want)

        def train(p: Any, s: Any, x: jax.Array) -> Any:
            return model.apply(p, s, x, is_training=True)[0]

        # training: BatchNorm's batch statistics are not a per-channel affine; only the last
        # layer's bias + ReLU fuses
        text = jax.jit(train).lower(params, state, x).compile().as_text()
        assert text.count(FUSED) == 1

    # an activation that uses the convolution's output besides its BatchNorm: right values,
    # both convolutions kept
    shared = tp.transform(net("NHWC", activation_3=lambda v: tp.BNReLU(v) + v))
    params, state = variables(shared, x)
    run = compiled(shared, params, state, x)
    assert run.as_text().count(FUSED) == 4 and run.as_text().count(PLAIN) == 1
    close(run(params, state, x), compiled(shared, params, state, x, fuse=False)(params, state, x))


def test_compat_relu_fuses_as_jax_relu_does() -> None:
    from tpflax.compat import tf

    def model(x: jax.Array) -> jax.Array:
        return tp.Conv2D("conv", x, 8, 3, activation=tf.nn.relu)

    m = tp.transform(model)
    x = jax.random.normal(jax.random.key(2), (2, 12, 12, 4))
    params, state = variables(m, x)
    fused = compiled(m, params, state, x)
    assert fused.as_text().count(FUSED) == 1
    close(fused(params, state, x), compiled(m, params, state, x, fuse=False)(params, state, x))


def test_conv_post_applies_its_steps_in_order() -> None:
    k = jax.random.split(jax.random.key(3), 5)
    x, w = jax.random.normal(k[0], (2, 9, 9, 8)), jax.random.normal(k[1], (3, 3, 8, 16))
    mean, inv, beta = (jax.random.normal(kk, (16,)) for kk in k[2:])
    post = ("sub", "mul", "add", "relu")
    got = jax.jit(lambda *a: onednn.conv_post(x, w, post, a, strides=(2, 2), padding="SAME"))(
        mean, inv, beta
    )
    y = jax.jit(lambda: onednn.conv(x, w, strides=(2, 2), padding="SAME"))()
    mean, inv, beta = (v.reshape(1, 1, 1, 16) for v in (mean, inv, beta))
    close(got, jax.nn.relu((y - mean) * inv + beta))
    with pytest.raises(ValueError, match="one vector per binary op"):
        onednn.conv_post(x, w, post, (mean,), strides=(1, 1), padding="SAME")
