"""Orbax checkpoints of a tpflax model: (params, state), a full training state with optax
and step, tp.checkpoint.load on them, and a readable diff when the trees differ."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import tpflax as tp


def net(x, classes=3):
    l = tp.Conv2D("conv0", x, 4, 3, activation=tp.BNReLU)
    return tp.FullyConnected("linear", l, classes)


@pytest.fixture(scope="module")
def trained():
    model = tp.transform(net)
    x = jnp.asarray(np.random.RandomState(0).randn(2, 5, 5, 2), jnp.float32)
    params, state = model.init(jax.random.key(0), x)
    opt = optax.sgd(0.1, momentum=0.9)
    opt_state = opt.init(params)

    def loss(p, s):
        y, new_state = model.apply(p, s, x, is_training=True)
        return jnp.sum(y**2), new_state

    grads, state = jax.grad(loss, has_aux=True)(params, state)
    updates, opt_state = opt.update(grads, opt_state)
    params = optax.apply_updates(params, updates)
    return model, x, params, state, opt_state


def test_model_round_trip_and_load(tmp_path, trained) -> None:
    _, _, params, state, _ = trained
    path = str(tmp_path / "ckpt")
    tp.checkpoint.save_orbax(path, params, state)
    assert tp.checkpoint.detect_format(path) == "orbax"
    flat = tp.checkpoint.load(path)
    want = tp.checkpoint.flatten(params, state)
    assert sorted(flat) == sorted(want)
    for name, value in want.items():
        np.testing.assert_array_equal(flat[name], value)
    zeros = jax.tree.map(jnp.zeros_like, (params, state))
    restored = tp.checkpoint.restore_orbax(path, *zeros)
    jax.tree.map(np.testing.assert_array_equal, restored["params"], params)
    jax.tree.map(np.testing.assert_array_equal, restored["state"], state)
    # tp.checkpoint.restore reads the directory too
    p2, _, report = tp.checkpoint.restore(path, *zeros)
    assert report.missing == [] and report.unexpected == []
    jax.tree.map(np.testing.assert_array_equal, p2, params)


def test_full_training_state(tmp_path, trained) -> None:
    _, _, params, state, opt_state = trained
    path = str(tmp_path / "train")
    tp.checkpoint.save_orbax(path, params, state, opt_state=opt_state, step=41)
    template = jax.tree.map(jnp.zeros_like, (params, state, opt_state))
    out = tp.checkpoint.restore_orbax(path, template[0], template[1], opt_state=template[2])
    assert out["step"] == 41
    assert jax.tree.structure(out["opt_state"]) == jax.tree.structure(opt_state)
    jax.tree.map(np.testing.assert_array_equal, out["opt_state"], opt_state)
    # the model variables alone restore from a training checkpoint too
    assert set(tp.checkpoint.restore_orbax(path, template[0], template[1])) == {
        "params",
        "state",
        "step",
    }


def test_restore_into_a_different_model_gives_a_readable_diff(tmp_path, trained) -> None:
    _, x, params, state, _ = trained
    path = str(tmp_path / "ckpt")
    tp.checkpoint.save_orbax(path, params, state)
    other = tp.transform(lambda x: net(x, classes=5))
    p5, s5 = other.init(jax.random.key(1), x)
    p5["extra"] = {"W": jnp.ones(2)}
    with pytest.raises(ValueError) as err:
        tp.checkpoint.restore_orbax(path, p5, s5)
    message = str(err.value)
    assert "does not match the model" in message
    assert "only in the model: extra/W" in message
    assert "linear/W: checkpoint [100, 3] float32, model [100, 5] float32" in message
    with pytest.raises(ValueError, match=r"has no optimizer state"):
        tp.checkpoint.restore_orbax(path, params, state, opt_state=optax.sgd(0.1).init(params))


def test_existing_checkpoint_is_not_overwritten_silently(tmp_path, trained) -> None:
    _, _, params, state, _ = trained
    path = str(tmp_path / "ckpt")
    tp.checkpoint.save_orbax(path, params, state)
    with pytest.raises(FileExistsError, match=r"ckpt already exists; pass overwrite=True"):
        tp.checkpoint.save_orbax(path, params, state)
    tp.checkpoint.save_orbax(path, params, state, overwrite=True)
