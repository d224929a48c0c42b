"""tp.checkpoint: flatten / unflatten / restore on in-memory flat dicts."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpflax as tp


def _model():
    def net(x):
        return tp.FullyConnected("fc", tp.BatchNorm("bn", x), 3)

    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), jnp.ones((2, 4)))
    return model, params, state


def test_flatten_unflatten_round_trip() -> None:
    _, params, state = _model()
    flat = tp.checkpoint.flatten(params, state)
    assert sorted(flat) == ["bn/beta", "bn/gamma", "bn/mean/EMA", "bn/variance/EMA", "fc/W", "fc/b"]
    p2, s2 = tp.checkpoint.unflatten({k + ":0": v for k, v in flat.items()})
    assert jax.tree_util.tree_structure(p2) == jax.tree_util.tree_structure(params)
    assert jax.tree_util.tree_structure(s2) == jax.tree_util.tree_structure(state)


def test_unflatten_duplicates_after_suffix() -> None:
    with pytest.raises(ValueError, match="'a/W' and 'a/W:0' are the same variable"):
        tp.checkpoint.unflatten({"a/W": 1, "a/W:0": 2})


def test_restore_with_suffixes_reshape_and_cast(caplog) -> None:
    _, params, state = _model()
    flat = {k + ":0": np.asarray(v) for k, v in tp.checkpoint.flatten(params, state).items()}
    flat["fc/b:0"] = np.arange(3, dtype=np.float64).reshape(1, 3)
    with caplog.at_level(logging.WARNING, logger="tpflax"):
        p, _, report = tp.checkpoint.restore(flat, params, state)
    assert p["fc"]["b"].dtype == jnp.float32
    assert p["fc"]["b"].tolist() == [0.0, 1.0, 2.0]
    assert report.reshaped == [("fc/b", (1, 3), (3,))]
    assert report.cast == [("fc/b", "float64", "float32")]
    assert "reshaped [1, 3] -> [3]" in caplog.text
    assert "cast float64 -> float32" in caplog.text
    assert len(report.loaded) == 6


def test_restore_strict_lists_every_mismatch() -> None:
    _, params, state = _model()
    flat = tp.checkpoint.flatten(params, state)
    del flat["fc/W"], flat["bn/gamma"]
    flat["linear/W"] = np.ones(2, np.float32)
    flat["fc/W/Momentum"] = np.ones(2, np.float32)
    flat["global_step"] = np.int64(5)
    with pytest.raises(
        ValueError,
        match=r"missing from the checkpoint: bn/gamma, fc/W; not in "
        r"the model: linear/W",
    ):
        tp.checkpoint.restore(flat, params, state)
    p, _, report = tp.checkpoint.restore(flat, params, state, strict=False)
    assert report.missing == ["bn/gamma", "fc/W"]
    assert report.unexpected == ["linear/W"]
    assert report.skipped == ["fc/W/Momentum", "global_step"]
    assert p["fc"]["W"] is params["fc"]["W"]
    assert "Variable fc/W in the graph not found in checkpoint!" in str(report)


def test_restore_rejects_incompatible_values() -> None:
    _, params, state = _model()
    flat = tp.checkpoint.flatten(params, state)
    with pytest.raises(ValueError, match=r"'fc/W' has shape \[5\] in the checkpoint but \[4, 3\]"):
        tp.checkpoint.restore({**flat, "fc/W": np.ones(5, np.float32)}, params, state)
    with pytest.raises(ValueError, match=r"'fc/b' is int32 in the checkpoint but float32"):
        tp.checkpoint.restore({**flat, "fc/b": np.ones(3, np.int32)}, params, state)


def test_restore_from_npz(tmp_path) -> None:
    _, params, state = _model()
    flat = {k + ":0": np.asarray(v) + 1 for k, v in tp.checkpoint.flatten(params, state).items()}
    path = tmp_path / "weights.npz"
    np.savez(path, **flat)
    p, _, _ = tp.checkpoint.restore(str(path), params, state)
    assert jnp.allclose(p["fc"]["W"], params["fc"]["W"] + 1)
    with pytest.raises(FileNotFoundError, match="no such file"):
        tp.checkpoint.restore(str(tmp_path / "missing.npz"), params, state)


def test_restore_prefix_rename_and_ignore() -> None:
    params = {"conv0": {"W": jnp.zeros(2)}, "head": {"W": jnp.zeros(3)}}
    source = {
        "tower0/conv0/W:0": np.ones(2, np.float32),
        "tower0/linear/W:0": np.full(3, 2.0, np.float32),
        "tower0/linear/b:0": np.ones(5, np.float32),
    }
    p, _, report = tp.checkpoint.restore(
        source,
        params,
        strip_prefix="tower0/",
        rename={"linear/W": "head/W"},
        ignore=[r"tower0/linear/b"],
    )
    np.testing.assert_array_equal(p["conv0"]["W"], [1.0, 1.0])
    np.testing.assert_array_equal(p["head"]["W"], [2.0, 2.0, 2.0])
    assert report.ignored == ["tower0/linear/b"]
    assert "Ignored variable tower0/linear/b in checkpoint (ignore=)." in str(report)
    p, _, _ = tp.checkpoint.restore(
        {"W": np.ones(2)}, {"net": {"W": jnp.zeros(2)}}, add_prefix="net/"
    )
    np.testing.assert_array_equal(p["net"]["W"], [1.0, 1.0])


def test_restore_fine_tuning_with_another_class_count() -> None:
    """tensorpack's ignore_mismatch: a shape mismatch is still an error naming the variable;
    ignore= leaves the classifier at its fresh values."""
    params = {"conv0": {"W": jnp.zeros(2)}, "linear": {"W": jnp.full((4, 5), 7.0)}}
    source = {"conv0/W": np.ones(2, np.float32), "linear/W": np.ones((4, 1000), np.float32)}
    with pytest.raises(ValueError, match=r"variable 'linear/W' has shape \[4, 1000\]"):
        tp.checkpoint.restore(source, params)
    p, _, report = tp.checkpoint.restore(source, params, strict=False, ignore=["linear/.*"])
    assert report.missing == ["linear/W"] and report.ignored == ["linear/W"]
    np.testing.assert_array_equal(p["linear"]["W"], params["linear"]["W"])


def test_restore_from_a_nested_tree() -> None:
    """Another model's (params, state) trees work as a source, as flat names do."""
    _, params, state = _model()
    ones = jax.tree.map(jnp.ones_like, params)
    nested = {"fc": ones["fc"], "bn": {**ones["bn"], **state["bn"]}}
    p, _, report = tp.checkpoint.restore(nested, params, state)
    assert report.missing == [] and report.unexpected == []
    np.testing.assert_array_equal(p["fc"]["W"], np.ones_like(params["fc"]["W"]))


def test_writers_create_parent_folders(tmp_path) -> None:
    import jax.numpy as jnp

    params = {"conv0": {"W": jnp.ones((3, 3, 1, 2))}}
    tp.checkpoint.save_tf_checkpoint(
        str(tmp_path / "out" / "model-1"), tp.checkpoint.flatten(params)
    )
    tp.checkpoint.save_npz(str(tmp_path / "a" / "b" / "mine.npz"), params)
    assert sorted(tp.checkpoint.load(str(tmp_path / "out" / "model-1"))) == ["conv0/W"]
    assert sorted(tp.checkpoint.load(str(tmp_path / "a" / "b" / "mine.npz"))) == ["conv0/W"]


def test_restore_strict_accepts_a_tensorpack_checkpoint_without_moving_summaries() -> None:
    """tensorpack keeps add_moving_summary's EMA/<name>/* in local variables, never saved: a
    strict restore of its checkpoint into a model that has them keeps their initial values."""
    params = {"fc": {"W": jnp.ones((2, 2))}}
    state = {"EMA": {"cost": {"biased": jnp.zeros(()), "local_step": jnp.zeros(())}}}
    new_params, new_state, report = tp.checkpoint.restore(
        {"fc/W": np.full((2, 2), 3.0, np.float32)}, params, state
    )
    assert float(new_params["fc"]["W"][0, 0]) == 3.0
    assert report.missing == ["EMA/cost/biased", "EMA/cost/local_step"]
    assert float(new_state["EMA"]["cost"]["local_step"]) == 0.0
    with pytest.raises(ValueError, match=r"missing from the checkpoint: fc/W"):
        tp.checkpoint.restore({}, params, state)
