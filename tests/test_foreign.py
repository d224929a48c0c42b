"""tp.module: flax.linen and flax NNX modules inside a tpflax model, against the library's
own apply on the same variables (values, gradients, BatchNorm statistics)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import tpflax as tp


class Block(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        x = nn.Dense(4)(x)
        return nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))


def linen_net(x):
    h = tp.module("blk", Block())(x)
    return tp.FullyConnected("fc", h, 2)


X = jnp.arange(12.0).reshape(4, 3) / 7.0


def _head(params, h):
    return h @ params["fc"]["W"] + params["fc"]["b"][None]


def test_linen_module_values_gradients_and_statistics_are_flaxs() -> None:
    model = tp.transform(linen_net)
    params, state = model.init(jax.random.key(0), X)
    assert sorted(tp.checkpoint.flatten(state)) == ["blk/BatchNorm_0/mean", "blk/BatchNorm_0/var"]
    block = Block()
    variables = {"params": params["blk"], "batch_stats": state["blk"]}

    # inference: the module's own apply, running averages
    y, _ = model.apply(params, state, X)
    np.testing.assert_allclose(y, _head(params, block.apply(variables, X, train=False)), 1e-6)

    # training: batch statistics, their update in new_state, and the gradients
    def ours(p):
        out, new_state = model.apply(p, state, X, is_training=True)
        return out.sum(), new_state

    def flaxs(p):
        h, updates = block.apply(
            {"params": p["blk"], "batch_stats": state["blk"]},
            X,
            train=True,
            mutable=["batch_stats"],
        )
        return _head(p, h).sum(), updates["batch_stats"]

    (v1, s1), g1 = jax.value_and_grad(ours, has_aux=True)(params)
    (v2, s2), g2 = jax.value_and_grad(flaxs, has_aux=True)(params)
    np.testing.assert_allclose(v1, v2, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), g1, g2)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), s1["blk"], s2)
    assert not np.allclose(s1["blk"]["BatchNorm_0"]["mean"], state["blk"]["BatchNorm_0"]["mean"])


def test_linen_module_variables_save_restore_and_regularize(tmp_path) -> None:
    def net(x):
        y = linen_net(x)
        return y, tp.regularize_cost("blk/.*/kernel", tp.l2_regularizer(1.0))

    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), X)
    (_, wd), _ = jax.jit(model.apply, static_argnames="is_training")(
        params, state, X, is_training=True
    )
    want = 0.5 * float(jnp.sum(params["blk"]["Dense_0"]["kernel"] ** 2))  # l2_regularizer(1)
    np.testing.assert_allclose(wd, want, rtol=1e-6)
    path = tmp_path / "w.npz"
    tp.checkpoint.save_npz(path, params, state)
    zeros = jax.tree.map(jnp.zeros_like, (params, state))
    restored, restored_state, _ = tp.checkpoint.restore(str(path), *zeros)
    jax.tree.map(np.testing.assert_array_equal, (restored, restored_state), (params, state))


def test_nnx_module_values_and_statistics_are_nnxs() -> None:
    seq = nnx.Sequential(nnx.Linear(3, 4, rngs=nnx.Rngs(0)), nnx.BatchNorm(4, rngs=nnx.Rngs(0)))
    model = tp.transform(lambda x: tp.module("seq", seq)(x))
    params, state = model.init(jax.random.key(0), X)
    y, new_state = model.apply(params, state, X, is_training=True)
    seq.train()
    np.testing.assert_allclose(y, seq(X), rtol=1e-6)  # seq's own call, its statistics updated
    np.testing.assert_allclose(
        new_state["seq"]["layers"]["1"]["mean"], seq.layers[1].mean.get_value(), rtol=1e-6
    )
    seq.eval()
    y_eval, _ = model.apply(params, new_state, X)
    np.testing.assert_allclose(y_eval, seq(X), rtol=1e-6)


def test_module_errors() -> None:
    with pytest.raises(TypeError, match=r"tp.module\('x'\): expected a flax.linen or flax.nnx"):
        tp.module("x", lambda t: t)
