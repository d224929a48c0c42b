"""tp.module: flax.linen and flax NNX modules inside a tpflax model, against the library's
own apply on the same variables (values, gradients, BatchNorm statistics)."""

from __future__ import annotations

import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
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


# ------------------------------------------------------------------------------ equinox
def _eqx_model():
    eqx = pytest.importorskip("equinox")
    k1, k2 = jax.random.split(jax.random.key(3))
    return eqx.nn.make_with_state(eqx.nn.Sequential)(
        [
            eqx.nn.Linear(3, 4, key=k1),
            eqx.nn.BatchNorm(4, "batch", momentum=0.9, mode="ema"),
            eqx.nn.Lambda(jax.nn.relu),
            eqx.nn.Linear(4, 2, key=k2),
        ]
    )


def _eqx_with(model, p):
    """``model`` holding the params tree ``p`` (equinox's own tree_at, by attribute)."""
    eqx = pytest.importorskip("equinox")
    l0, l1, l3 = p["layers"]["0"], p["layers"]["1"], p["layers"]["3"]
    return eqx.tree_at(
        lambda m: [
            m.layers[0].weight,
            m.layers[0].bias,
            m.layers[1].weight,
            m.layers[1].bias,
            m.layers[3].weight,
            m.layers[3].bias,
        ],
        model,
        [l0["weight"], l0["bias"], l1["weight"], l1["bias"], l3["weight"], l3["bias"]],
    )


def _eqx_apply(model, state, x, training):
    """Equinox's own batched call: vmap over the batch with axis 'batch'."""
    eqx = pytest.importorskip("equinox")
    model = eqx.nn.inference_mode(model, value=not training)
    return jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(x, state)


def test_equinox_module_values_gradients_and_statistics_are_equinoxs() -> None:
    model, eqx_state = _eqx_model()
    net = tp.transform(lambda x: tp.module("enc", model, eqx_state)(x))
    params, state = net.init(jax.random.key(0), X)
    assert sorted(tp.checkpoint.flatten(params)) == [
        f"enc/layers/{i}/{w}" for i in (0, 1, 3) for w in ("bias", "weight")
    ]
    assert sorted(tp.checkpoint.flatten(state)) == [
        "enc/layers/1/ema_first_time_index",
        "enc/layers/1/ema_state_index/0",
        "enc/layers/1/ema_state_index/1",
    ]
    # other params than the module's own: the mapping by name matters
    params = jax.tree.map(lambda a: a + 0.1 * jnp.cos(jnp.arange(a.size)).reshape(a.shape), params)
    index = model.layers[1].ema_state_index

    def ours(p):
        out, new_state = net.apply(p, state, X, is_training=True)
        return (out**2).sum(), new_state

    def equinoxs(p):
        st = jax.tree.unflatten(*reversed(jax.tree.flatten(eqx_state)))  # a fresh copy
        out, new_st = _eqx_apply(_eqx_with(model, p["enc"]), st, X, True)
        return (out**2).sum(), new_st

    (v1, s1), g1 = jax.jit(jax.value_and_grad(ours, has_aux=True))(params)
    (v2, s2), g2 = jax.jit(jax.value_and_grad(equinoxs, has_aux=True))(params)
    np.testing.assert_allclose(v1, v2, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), g1, g2)
    mean, var = s2.get(index)
    bn = s1["enc"]["layers"]["1"]
    np.testing.assert_allclose(bn["ema_state_index"]["0"], mean, rtol=1e-6)
    np.testing.assert_allclose(bn["ema_state_index"]["1"], var, rtol=1e-6)
    assert not np.allclose(mean, 0.0)
    assert not bool(bn["ema_first_time_index"])

    # inference: the running statistics equinox itself updated
    y, _ = net.apply(params, s1, X)
    want, _ = _eqx_apply(_eqx_with(model, params["enc"]), s2, X, False)
    np.testing.assert_allclose(y, want, rtol=1e-6)


def test_equinox_dropout_draws_from_the_models_rng_per_example() -> None:
    eqx = pytest.importorskip("equinox")
    drop = eqx.nn.Dropout(0.5)
    net = tp.transform(lambda x: tp.module("drop", drop)(x))
    x = jnp.ones((8, 16))
    params, state = net.init(jax.random.key(0), x)
    assert params == {} and state == {}
    y, _ = net.apply(params, state, x)  # inference: equinox's identity
    np.testing.assert_array_equal(y, x)
    y1, _ = net.apply(params, state, x, is_training=True, rng=jax.random.key(1))
    y2, _ = net.apply(params, state, x, is_training=True, rng=jax.random.key(2))
    assert set(np.unique(np.asarray(y1))) == {0.0, 2.0}  # equinox's scaling 1 / (1 - p)
    assert len({tuple(row) for row in np.asarray(y1)}) == 8  # one key per example
    assert not np.array_equal(y1, y2)


# ------------------------------------------------------------------------------ haiku
def _hk_forward(x, is_training):
    hk = pytest.importorskip("haiku")
    x = hk.nets.MLP([4], activate_final=False, name="mlp")(x)
    x = hk.BatchNorm(True, True, 0.9)(x, is_training)
    return hk.Linear(2)(jax.nn.relu(x))


def _hk_params(tree):
    """Our names back to haiku's: ``mlp/linear_0`` is haiku's ``mlp/~/linear_0``."""
    return {
        "mlp/~/linear_0": tree["mlp"]["linear_0"],
        "batch_norm": tree["batch_norm"],
        "linear": tree["linear"],
    }


def _hk_state(tree):
    bn = tree["batch_norm"]
    return {"batch_norm/~/mean_ema": bn["mean_ema"], "batch_norm/~/var_ema": bn["var_ema"]}


def test_haiku_transform_values_gradients_and_statistics_are_haikus() -> None:
    hk = pytest.importorskip("haiku")
    t = hk.transform_with_state(_hk_forward)
    net = tp.transform(lambda x: tp.module("net", t)(x))
    params, state = net.init(jax.random.key(0), X)
    assert sorted(tp.checkpoint.flatten(params)) == [
        "net/batch_norm/offset",
        "net/batch_norm/scale",
        "net/linear/b",
        "net/linear/w",
        "net/mlp/linear_0/b",
        "net/mlp/linear_0/w",
    ]
    assert sorted(tp.checkpoint.flatten(state)) == [
        f"net/batch_norm/{ema}/{v}"
        for ema in ("mean_ema", "var_ema")
        for v in ("average", "counter", "hidden")
    ]
    params = jax.tree.map(lambda a: a + 0.1 * jnp.cos(jnp.arange(a.size)).reshape(a.shape), params)

    def ours(p):
        out, new_state = net.apply(p, state, X, is_training=True)  # is_training=True reaches f
        return (out**2).sum(), new_state

    def haikus(p):
        out, new_state = t.apply(_hk_params(p["net"]), _hk_state(state["net"]), None, X, True)
        return (out**2).sum(), new_state

    (v1, s1), g1 = jax.jit(jax.value_and_grad(ours, has_aux=True))(params)
    (v2, s2), g2 = jax.jit(jax.value_and_grad(haikus, has_aux=True))(params)
    np.testing.assert_allclose(v1, v2, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), g1, g2)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), _hk_state(s1["net"]), s2)
    assert int(s1["net"]["batch_norm"]["mean_ema"]["counter"]) == 1

    y, _ = net.apply(params, s1, X)  # inference: is_training=False, the moving averages
    want, _ = t.apply(_hk_params(params["net"]), s2, None, X, False)
    np.testing.assert_allclose(y, want, rtol=1e-6)


def test_haiku_rng_comes_from_the_models_rng_in_training() -> None:
    hk = pytest.importorskip("haiku")

    def f(x, is_training):
        return hk.dropout(hk.next_rng_key(), 0.5, x) if is_training else x

    for t in (hk.transform(f), hk.without_apply_rng(hk.transform(lambda x: f(x, False)))):
        net = tp.transform(lambda x, t=t: tp.module("d", t)(x))
        x = jnp.ones((4, 8))
        params, state = net.init(jax.random.key(0), x)
        np.testing.assert_array_equal(net.apply(params, state, x)[0], x)
    net = tp.transform(lambda x: tp.module("d", hk.transform(f))(x))
    y1, _ = net.apply(params, state, x, is_training=True, rng=jax.random.key(1))
    y2, _ = net.apply(params, state, x, is_training=True, rng=jax.random.key(2))
    assert set(np.unique(np.asarray(y1))) == {0.0, 2.0}
    assert not np.array_equal(y1, y2)


def test_equinox_and_haiku_variables_regularize_jit_save_and_restore(tmp_path) -> None:
    hk = pytest.importorskip("haiku")
    model, eqx_state = _eqx_model()
    t = hk.transform_with_state(_hk_forward)

    def net(x):
        h = tp.module("enc", model, eqx_state)(x)
        y = tp.module("net", t)(jnp.concatenate([h, x[:, :1]], axis=1))
        reg = tp.regularize_cost("enc/.*/weight", tp.l2_regularizer(1.0))
        return y, reg + tp.regularize_cost("net/.*/w", tp.l2_regularizer(1.0))

    m = tp.transform(net)
    params, state = m.init(jax.random.key(0), X)
    (_, wd), new_state = jax.jit(m.apply, static_argnames="is_training")(
        params, state, X, is_training=True
    )
    # l2_regularizer(1) is sum(w ** 2) / 2, over the library's own weights
    weights = [model.layers[i].weight for i in (0, 1, 3)]
    h = _hk_params(params["net"])
    weights += [h["mlp/~/linear_0"]["w"], h["linear"]["w"]]
    np.testing.assert_allclose(wd, sum(0.5 * float(jnp.sum(w**2)) for w in weights), rtol=1e-6)
    # tensorpack's npz and a TF checkpoint (equinox's bool and haiku's int32 state included)
    tp.checkpoint.save_npz(tmp_path / "w.npz", params, new_state)
    tp.checkpoint.save_tf_checkpoint(
        str(tmp_path / "model-1"), tp.checkpoint.flatten(params, new_state)
    )
    for path in (tmp_path / "w.npz", tmp_path / "model-1"):
        zeros = jax.tree.map(jnp.zeros_like, (params, new_state))
        restored, restored_state, _ = tp.checkpoint.restore(str(path), *zeros)
        jax.tree.map(np.testing.assert_array_equal, (restored, restored_state), (params, new_state))
        y1, _ = m.apply(params, new_state, X)
        y2, _ = m.apply(restored, restored_state, X)
        np.testing.assert_array_equal(y1[0], y2[0])


def test_module_errors_for_equinox_and_haiku() -> None:
    eqx = pytest.importorskip("equinox")
    hk = pytest.importorskip("haiku")
    with pytest.raises(TypeError, match=r"must be transformed first \(hk.transform_with_state"):
        tp.module("x", _hk_forward)
    with pytest.raises(TypeError, match=r"tp.module\('x'\): state= is for equinox modules"):
        tp.module("x", nn.Dense(2), {"a": 1})
    with pytest.raises(TypeError, match=r"tp.module\('x'\): axis_name= is for equinox"):
        tp.module("x", hk.transform(_hk_forward), axis_name="b")
    model, _ = _eqx_model()
    with pytest.raises(TypeError, match=r"taken out by eqx.nn.make_with_state: pass it"):
        tp.module("x", model)
    with pytest.raises(TypeError, match=r"tp.module\('x'\): state must be an eqx.nn.State"):
        tp.module("x", model, {"a": 1})

    class Add(eqx.Module):
        def __call__(self, a, b):
            return a + b

    two = tp.transform(lambda x: tp.module("x", Add())(x, x[:2]))
    with pytest.raises(ValueError, match=r"tp.module\('x'\): every positional input .*\[2, 4\]"):
        two.init(jax.random.key(0), X)


def test_equinox_axis_name_none_calls_the_module_once_on_the_whole_batch() -> None:
    eqx = pytest.importorskip("equinox")
    total = eqx.nn.Lambda(lambda x: x.sum(axis=0))
    whole = tp.transform(lambda x: tp.module("s", total, axis_name=None)(x))
    per_example = tp.transform(lambda x: tp.module("s", total)(x))
    np.testing.assert_allclose(whole.apply({}, {}, X)[0], np.asarray(X).sum(0), rtol=1e-6)
    np.testing.assert_allclose(per_example.apply({}, {}, X)[0], np.asarray(X).sum(1), rtol=1e-6)


def test_equinox_and_haiku_are_imported_only_when_used() -> None:
    code = "import sys, tpflax; print('equinox' in sys.modules, 'haiku' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_equinox_module_trains_with_tp_train() -> None:
    model, eqx_state = _eqx_model()
    net = tp.transform(lambda x, y: jnp.mean((tp.module("enc", model, eqx_state)(x) - y) ** 2))
    y = jnp.ones((4, 2))
    params, state = net.init(jax.random.key(0), X, y)
    trainer = tp.train.Trainer(net, optax.sgd(0.0), donate=False)
    ts = trainer.init(params, state, X, y, rng=jax.random.key(1))
    ts, metrics = trainer.step(ts, X, y)
    cost, new_state = net.apply(params, state, X, y, is_training=True)
    np.testing.assert_allclose(metrics["cost"], cost, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), ts.state, new_state)


def test_a_training_flag_the_call_passes_positionally_wins() -> None:
    hk = pytest.importorskip("haiku")
    t = hk.transform_with_state(_hk_forward)
    # is_training=False passed by the model in training: haiku's inference; init still
    # creates the moving averages (haiku initializes in training)
    net = tp.transform(lambda x: tp.module("net", t)(x, False))
    params, state = net.init(jax.random.key(0), X)
    y, new_state = net.apply(params, state, X, is_training=True)
    want, _ = t.apply(_hk_params(params["net"]), _hk_state(state["net"]), None, X, False)
    np.testing.assert_allclose(y, want, rtol=1e-6)
    jax.tree.map(np.testing.assert_array_equal, new_state, state)  # nothing updated
    blk = tp.transform(lambda x: tp.module("blk", Block())(x, False))
    params, state = blk.init(jax.random.key(0), X)
    variables = {"params": params["blk"], "batch_stats": state["blk"]}
    y, _ = blk.apply(params, state, X, is_training=True)
    np.testing.assert_allclose(y, Block().apply(variables, X, train=False), rtol=1e-6)
