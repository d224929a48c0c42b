"""The table of checkpoint formats (issue 19): one ``Format`` entry per format, the same
writer signature for all, detection, the command's guess from a target path; and the
command and ``tp.train`` use only ``tp.checkpoint``'s public names."""

from __future__ import annotations

import ast
import inspect
import logging
import pathlib

import numpy as np
import pytest

import tpflax as tp
from tpflax.checkpoint import FORMATS, Format, FormatError

SRC = pathlib.Path(tp.__file__).parent


def flat() -> dict[str, np.ndarray]:
    return {
        "conv0/W": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "bn/mean/EMA": np.ones(4, np.float64),
        "fc/b": np.array([1, 2], np.int32),
        "conv0/W/Momentum": np.zeros((2, 3, 4), np.float32),
    }


def test_the_table_lists_every_format_once() -> None:
    assert list(FORMATS) == ["npz", "tf", "orbax"]
    assert all(isinstance(f, Format) and FORMATS[f.name] is f for f in FORMATS.values())
    with pytest.raises(TypeError):
        FORMATS["h5"] = FORMATS["npz"]  # type: ignore[index]
    # exactly one format is the command's fallback for a name no other format claims
    assert [f.name for f in FORMATS.values() if f.names_target is None] == ["orbax"]


@pytest.mark.parametrize("name, target", [("npz", "w.npz"), ("tf", "model-7"), ("orbax", "ck")])
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_every_format_writes_and_reads_through_the_same_signature(tmp_path, name, target) -> None:
    fmt = FORMATS[name]
    path = str(tmp_path / target)
    assert not fmt.exists(path)
    fmt.write(path, flat())
    assert fmt.exists(path) and fmt.detect(path)
    assert tp.checkpoint.detect_format(path) == name
    got = fmt.read(path)
    want = flat()
    if name == "orbax":  # a model's (params, state): training-only names are left out
        del want["conv0/W/Momentum"]
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype, key
        np.testing.assert_array_equal(got[key], value)
    with pytest.raises(FileExistsError, match=rf"a checkpoint \({name}\) is already there"):
        fmt.write(path, flat())
    fmt.write(path, {"only": np.zeros(2, np.float32)}, overwrite=True)
    assert sorted(fmt.read(path)) == ["only"]


def test_save_guesses_from_the_path_as_the_command_does(tmp_path) -> None:
    cases = {"a.npz": "npz", "model-3": "tf", "b.ckpt": "tf", "c.index": "tf", "ck/": "orbax"}
    for target, name in cases.items():
        assert tp.checkpoint.guess_format(target).name == name, target
    assert tp.checkpoint.guess_format("model-1.npz").name == "npz"  # a suffix wins
    values = {"w": np.ones(3, np.float32)}
    assert tp.checkpoint.save(str(tmp_path / "m.index"), values) == "tf"
    # an .index target names the prefix: m.index, m.data-*, not m.index.index
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint",
        "m.data-00000-of-00001",
        "m.index",
    ]
    assert tp.checkpoint.save(str(tmp_path / "x"), values, "npz") == "npz"
    assert tp.checkpoint.detect_format(str(tmp_path / "x")) == "npz"
    with pytest.raises(ValueError, match=r"unknown checkpoint format 'h5'; expected one of"):
        tp.checkpoint.save(str(tmp_path / "y"), values, "h5")


def test_save_tf_checkpoint_takes_params_and_state_like_the_other_writers(tmp_path) -> None:
    values = {k: v for k, v in flat().items() if not tp.checkpoint.is_training_name(k)}
    params, state = tp.checkpoint.unflatten(values)
    a, b = str(tmp_path / "a" / "model-1"), str(tmp_path / "b" / "model-1")
    assert tp.checkpoint.save_tf_checkpoint(a, params, state) == sorted(values)
    tp.checkpoint.save_tf_checkpoint(b, tp.checkpoint.flatten(params, state))  # README's form
    for path in (a, b):
        got = tp.checkpoint.load(path)
        assert sorted(got) == sorted(values)
        np.testing.assert_array_equal(got["conv0/W"], values["conv0/W"])
    for writer in (tp.checkpoint.save_npz, tp.checkpoint.save_orbax):
        assert list(inspect.signature(writer).parameters)[:3] == ["path", "params", "state"]
    assert list(inspect.signature(tp.checkpoint.save_tf_checkpoint).parameters) == [
        "prefix",
        "params",
        "state",
    ]


def test_what_a_directory_holds_decides_its_format(tmp_path) -> None:
    """A directory with a TF 'checkpoint' state file is a TF checkpoint even when the state
    file is broken, so that loading it says what is wrong with it."""
    (tmp_path / "checkpoint").write_bytes(b"\xff")
    assert tp.checkpoint.detect_format(str(tmp_path)) == "tf"
    with pytest.raises(FormatError, match="not UTF-8 text"):
        tp.checkpoint.load(str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match=r"empty: not a weight file tpflax reads \(expected a te"):
        tp.checkpoint.load(str(tmp_path / "empty"))


def test_orbax_items_names_what_a_checkpoint_holds(tmp_path) -> None:
    path = str(tmp_path / "ck")
    tp.checkpoint.save_orbax(path, {"w": np.ones(2, np.float32)}, step=3)
    assert tp.checkpoint.orbax_items(path) == ["params", "state", "step"]
    assert FORMATS["orbax"].left_out(path) == ["step"]
    assert FORMATS["npz"].left_out(path) == []
    with pytest.raises(FileNotFoundError, match="no orbax checkpoint at"):
        tp.checkpoint.orbax_items(str(tmp_path))


def _private_imports(path: pathlib.Path) -> list[str]:
    """Imports of ``tpflax.checkpoint``'s private modules or names in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tpflax.checkpoint"):
            private_module = any(p.startswith("_") for p in node.module.split(".")[2:])
            names = [a.name for a in node.names if a.name.startswith("_")]
            if private_module or names:
                found.append(f"{path.name}:{node.lineno}: from {node.module} import ...")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and isinstance(node.value, ast.Name)
            and node.value.id == "checkpoint"
        ):
            found.append(f"{path.name}:{node.lineno}: checkpoint.{node.attr}")
    return found


@pytest.mark.parametrize("module", ["cli.py", "train/_checkpoints.py", "train/_fit.py"])
def test_the_command_and_training_use_only_public_names(module) -> None:
    assert _private_imports(SRC / module) == []


def test_the_private_import_check_can_fail(tmp_path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from tpflax.checkpoint._load import FORMATS\n"
        "from tpflax.checkpoint import _orbax\n"
        "from tpflax import checkpoint\n"
        "checkpoint._load\n"
    )
    assert len(_private_imports(probe)) == 3


def test_every_public_name_has_its_own_docstring() -> None:
    for name in tp.checkpoint.__all__:
        obj = getattr(tp.checkpoint, name)
        if name == "FORMATS":
            continue  # a mapping: described in the module's docstring
        assert (obj.__doc__ or "").strip(), name
        assert obj.__doc__ != type(obj).__doc__ or inspect.isclass(obj), name
    assert "FORMATS" in (tp.checkpoint.__doc__ or "")


def test_restore_warns_from_its_lists_not_from_its_words(caplog) -> None:
    """Names in only one side are warnings; an ignored name that happens to hold the words
    'not found' is not."""
    source = {"a/W": np.ones(2, np.float32), "not found/W": np.ones(2, np.float32)}
    params = {"a": {"W": np.zeros(2, np.float32)}, "b": {"W": np.zeros(2, np.float32)}}
    with caplog.at_level(logging.WARNING, logger="tpflax"):
        _, _, report = tp.checkpoint.restore(source, params, strict=False, ignore=["not .*"])
    assert report.ignored == ["not found/W"] and report.missing == ["b/W"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["Variable b/W in the graph not found in checkpoint!"]
    assert "Ignored variable not found/W in checkpoint (ignore=)." in str(report)


def test_optimizer_slots_are_training_names() -> None:
    """TF's slot names, as tests/golden/tf_optimizers recorded them from TF (centered RMSProp
    with momentum: RMSProp, RMSProp_1, RMSProp_2), are never model variables."""
    import numpy as np
    from conftest import GOLDEN_DIR

    with np.load(GOLDEN_DIR / "tf_optimizers" / "rmsprop_centered.npz") as z:
        names = {n.split("/", 2)[2] for n in z.files if n.startswith("after/0/")}
    slots = sorted(n for n in names if "/RMSProp" in n)
    assert "dense/W/RMSProp_2" in slots
    assert all(tp.checkpoint.is_training_name(n) for n in slots)
    assert not tp.checkpoint.is_training_name("dense/W")
