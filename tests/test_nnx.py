"""tp.nnx: a tpflax model as an NNX module gives tp.transform's outputs, state and gradients;
nnx.jit, split/merge and nnx.Optimizer work; converted weights load into it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from test_golden_models import _resnet

import tpflax as tp


def net(x):
    return _resnet(x, "NHWC")


@pytest.fixture(scope="module")
def x():
    return jnp.asarray(np.random.RandomState(0).randn(4, 8, 8, 3), jnp.float32)


def _pair(x):
    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), x)
    module = tp.nnx.Model(net, x, rngs=nnx.Rngs(0))
    module.restore({**tp.checkpoint.flatten(params, state)})
    return model, params, state, module


def test_tensorpack_names_as_param_and_batchstat(x) -> None:
    _model, params, state, module = _pair(x)
    assert sorted(module.params) == sorted(tp.checkpoint.flatten(params))
    assert sorted(module.batch_stats) == sorted(tp.checkpoint.flatten(state))
    assert all(isinstance(v, nnx.Param) for v in module.params.values())
    assert all(isinstance(v, nnx.BatchStat) for v in module.batch_stats.values())
    assert sorted(nnx.state(module, nnx.BatchStat)["batch_stats"]) == sorted(module.batch_stats)


@pytest.mark.parametrize("train", [False, True])
def test_outputs_state_and_gradients_equal_transform(x, train) -> None:
    model, params, state, module = _pair(x)
    (logits, wd) = module(x, train=train)
    (want_logits, want_wd), new_state = model.apply(params, state, x, is_training=train)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(wd, want_wd, rtol=1e-6)
    for name, value in tp.checkpoint.flatten(new_state).items():
        np.testing.assert_allclose(module.batch_stats[name][...], value, rtol=1e-6)

    def loss_nnx(m):
        out = m(x, train=train)
        return jnp.sum(out[0] ** 2) + out[1]

    def loss_tp(p):
        out, _ = model.apply(p, state, x, is_training=train)
        return jnp.sum(out[0] ** 2) + out[1]

    module2 = _pair(x)[3]
    grads = nnx.grad(loss_nnx)(module2)
    want = tp.checkpoint.flatten(jax.grad(loss_tp)(params))
    for name, g in want.items():
        np.testing.assert_allclose(grads["params"][name][...], g, rtol=1e-4, atol=1e-6)


def test_jit_split_merge_and_optimizer(x) -> None:
    _model, params, state, module = _pair(x)
    graphdef, values = nnx.split(module)
    same = nnx.merge(graphdef, values)
    np.testing.assert_allclose(same(x)[0], module(x)[0])

    optimizer = nnx.Optimizer(module, optax.sgd(0.1), wrt=nnx.Param)

    @nnx.jit
    def step(m, opt):
        def loss(m):
            logits, wd = m(x, train=True)
            return jnp.mean(logits**2) + wd

        value, grads = nnx.value_and_grad(loss)(m)
        opt.update(m, grads)
        return value

    first = step(module, optimizer)

    # the same step by tp.train, from the same weights
    def cost(image):
        logits, wd = net(image)
        return jnp.mean(logits**2) + wd

    trainer = tp.train.Trainer(tp.transform(cost), optax.sgd(0.1))
    ts = trainer.init(params, state, x, rng=jax.random.key(0))
    ts, m = trainer.step(ts, x)
    np.testing.assert_allclose(first, m["cost"], rtol=1e-6)
    for name, value in tp.checkpoint.flatten(ts.params).items():
        np.testing.assert_allclose(module.params[name][...], value, rtol=1e-5, atol=1e-6)
    for name, value in tp.checkpoint.flatten(ts.state).items():
        np.testing.assert_allclose(module.batch_stats[name][...], value, rtol=1e-5, atol=1e-6)


def test_restore_from_a_tensorpack_file(tmp_path, x) -> None:
    model, params, state, _ = _pair(x)
    path = tmp_path / "model.npz"
    tp.checkpoint.save_npz(path, params, state)
    module = tp.nnx.Model(net, x, rngs=nnx.Rngs(5))
    report = module.restore(str(path), strict=True)
    assert sorted(report.loaded) == sorted(tp.checkpoint.flatten(params, state))
    np.testing.assert_allclose(module(x)[0], model.apply(params, state, x)[0][0], rtol=1e-6)


def test_dropout_uses_the_dropout_stream(x) -> None:
    def drop(t):
        return tp.Dropout("drop", t, rate=0.5)

    module = tp.nnx.Model(drop, x, rngs=nnx.Rngs(0, dropout=1))
    a, b = module(x, train=True), module(x, train=True)
    assert not np.array_equal(a, b)  # the stream advances
    np.testing.assert_array_equal(module(x), x)  # inference: identity
