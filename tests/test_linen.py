"""tpflax layers inside flax.linen: the same numbers as tp.transform, tensorpack's names in
the module's collections, BatchNorm state updates, Dropout rngs, restore from a file."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_golden_models import _resnet

import tpflax as tp


def net(x):
    return _resnet(x, "NHWC")


@pytest.fixture(scope="module")
def setup():
    x = jnp.asarray(np.random.RandomState(0).randn(4, 8, 8, 3), jnp.float32)
    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), x)
    return x, model, params, state


def test_variables_are_flat_tensorpack_names(setup) -> None:
    x, _, params, state = setup
    variables = tp.linen.Model(net).init(jax.random.key(0), x)
    assert set(variables) == {"params", "batch_stats"}
    assert sorted(variables["params"]) == sorted(tp.checkpoint.flatten(params))
    assert sorted(variables["batch_stats"]) == sorted(tp.checkpoint.flatten(state))
    shapes = {k: v.shape for k, v in tp.checkpoint.flatten(params).items()}
    assert {k: v.shape for k, v in variables["params"].items()} == shapes


@pytest.mark.parametrize("train", [False, True])
def test_same_outputs_state_and_gradients_as_transform(setup, train) -> None:
    x, model, params, state = setup
    module = tp.linen.Model(net)
    variables = {
        "params": tp.checkpoint.flatten(params),
        "batch_stats": tp.checkpoint.flatten(state),
    }
    (logits, wd), updates = module.apply(variables, x, train=train, mutable=["batch_stats"])
    (want_logits, want_wd), new_state = model.apply(params, state, x, is_training=train)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(wd, want_wd, rtol=1e-6)
    if train:
        assert float(wd) > 0  # regularize_cost sees the module's variables
    want_state = tp.checkpoint.flatten(new_state if train else state)
    for name, value in want_state.items():
        np.testing.assert_allclose(updates["batch_stats"][name], value, rtol=1e-6)

    def loss_linen(p):
        out, _ = module.apply({**variables, "params": p}, x, train=train, mutable=["batch_stats"])
        return jnp.sum(out[0] ** 2) + out[1]

    def loss_tp(p):
        out, _ = model.apply(p, state, x, is_training=train)
        return jnp.sum(out[0] ** 2) + out[1]

    g1 = jax.grad(loss_linen)(variables["params"])
    g2 = tp.checkpoint.flatten(jax.grad(loss_tp)(params))
    for name, value in g2.items():
        np.testing.assert_allclose(g1[name], value, rtol=1e-5, atol=1e-6)


def test_layers_in_a_compact_method_with_flax_modules_and_dropout() -> None:
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            with tp.linen.layers(self, train):
                with tp.argscope(tp.Conv2D, kernel_size=3, activation=tp.BNReLU):
                    x = tp.Conv2D("conv0", x, 4)
                x = tp.Dropout("drop", x, rate=0.5)
            return nn.Dense(2)(x.reshape(x.shape[0], -1))

    x = jnp.ones((2, 4, 4, 1))
    variables = Net().init(jax.random.key(0), x)
    assert "conv0/bn/gamma" in variables["params"] and "Dense_0" in variables["params"]
    y1, _ = Net().apply(
        variables, x, train=True, rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats"]
    )
    y2, _ = Net().apply(
        variables, x, train=True, rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"]
    )
    assert not np.allclose(y1, y2)  # different dropout masks
    with pytest.raises(ValueError, match=r"Dropout 'drop': needs a random key in training"):
        Net().apply(variables, x, train=True, mutable=["batch_stats"])


def test_restore_a_tensorpack_file_into_linen_variables(setup, tmp_path) -> None:
    x, model, params, state = setup
    path = str(tmp_path / "w.npz")
    tp.checkpoint.save_npz(path, params, state)
    variables = tp.linen.Model(net).init(jax.random.key(1), x)
    p, s, report = tp.checkpoint.restore(path, variables["params"], variables["batch_stats"])
    assert report.missing == [] and sorted(p) == sorted(variables["params"])  # still flat
    out = tp.linen.Model(net).apply({"params": p, "batch_stats": s}, x)
    want, _ = model.apply(params, state, x)
    np.testing.assert_allclose(out[0], want[0], rtol=1e-6, atol=1e-6)


def test_capture_and_bad_train_flag(setup) -> None:
    x, *_ = setup
    module = tp.linen.Model(net)
    variables = module.init(jax.random.key(0), x)
    _, captured = module.apply(variables, x, capture=["group0/block1/conv2/output"])
    assert captured["group0/block1/conv2/output"].shape == (4, 4, 4, 8)
    with pytest.raises(TypeError, match="train must be a Python bool"):
        module.apply(variables, x, train=1)


def _restored(fx, wrap=lambda tree: tree):
    ref = fx.prefixed("var/")
    trainable = fx.trainable
    return {
        "params": wrap({k: jnp.asarray(v) for k, v in ref.items() if k in trainable}),
        "batch_stats": wrap({k: jnp.asarray(v) for k, v in ref.items() if k not in trainable}),
    }


def test_reused_batchnorm_in_one_block_matches_tensorpack() -> None:
    """tensorpack's DCGAN (discriminator on real and fake under auto_reuse_variable_scope)
    as one linen Model: each call's EMA update adds, as in the golden fixture."""
    from golden_replay import OUT_RTOL, assert_close, fixtures
    from test_golden_models import model_dcgan

    fx = fixtures("model_dcgan_train.npz")[0]
    x = jnp.asarray(fx.data["input"])
    module = tp.linen.Model(lambda t: model_dcgan(t))
    outs, updates = module.apply(_restored(fx), x, train=True, mutable=["batch_stats"])
    for got, want in zip(outs, fx.outputs(), strict=True):
        assert_close("output", got, want, OUT_RTOL)
    for name, want in fx.prefixed("state/").items():
        assert_close(name, updates["batch_stats"][name], want, OUT_RTOL)


def test_reused_submodule_adds_its_updates_like_tensorpack() -> None:
    """A flax submodule called twice (two `tp.linen.layers` blocks) reads the EMA as the
    apply began and adds both updates: tensorpack's fixture for a BatchNorm reused twice."""
    from golden_replay import OUT_RTOL, assert_close, fixtures

    class D(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            with tp.linen.layers(self, train), tp.variable_scope("d"):
                return tp.BatchNorm("bn", x)

    class Outer(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            d = D(name="D")
            return [d(x, train), d(x * 2.0 + 1.0, train)]

    fx = fixtures("model_bn_reuse2_4d_train.npz")[0]
    x = jnp.asarray(fx.data["input"])
    variables = _restored(fx, lambda tree: {"D": tree})
    outs, updates = Outer().apply(variables, x, train=True, mutable=["batch_stats"])
    for got, want in zip(outs, fx.outputs(), strict=True):
        assert_close("output", got, want, OUT_RTOL)
    for name, want in fx.prefixed("state/").items():
        assert_close(name, updates["batch_stats"]["D"][name], want, OUT_RTOL)


def test_shape_log_at_init_only(caplog) -> None:
    import logging

    module = tp.linen.Model(lambda x: tp.FullyConnected("fc_logged", x, 2))
    x = jnp.ones((1, 3))
    with caplog.at_level(logging.INFO, logger="tpflax"):
        variables = module.init(jax.random.key(0), x)
    assert caplog.text.count("'fc_logged': [1, 3] --> [1, 2]") == 1
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tpflax"):
        module.apply(variables, x)
        module.apply(variables, x)
    assert "fc_logged" not in caplog.text
