"""The `tpflax` command (in process): inspect, convert, diff and their exit codes."""

from __future__ import annotations

import json
import logging
import pathlib
import re

import numpy as np
import pytest

import tpflax as tp
from tpflax import cli
from tpflax._src import host_memory

WEIGHTS = pathlib.Path(__file__).parent / "golden" / "weights"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_inspect_table_and_json(capsys) -> None:
    code, out, _ = run(capsys, "inspect", str(WEIGHTS / "model-3"))
    assert code == 0
    assert "conv0/W/Momentum" in out and "(training only)" in out
    assert out.strip().endswith("15 tensors, 279 values, 0.00 MiB")
    code, out, _ = run(capsys, "inspect", "--json", str(WEIGHTS / "model-3.npz"))
    data = json.loads(out)
    assert code == 0 and data["format"] == "npz" and data["total"]["tensors"] == 8
    conv = next(t for t in data["tensors"] if t["name"] == "conv0/W")
    assert conv == {
        "name": "conv0/W",
        "shape": [3, 3, 3, 4],
        "dtype": "float32",
        "count": 108,
        "bytes": 432,
        "training_only": False,
    }


def test_convert_between_all_formats(capsys, tmp_path) -> None:
    src = str(WEIGHTS / "model-3")
    steps = [
        (src, str(tmp_path / "a.npz"), []),
        (str(tmp_path / "a.npz"), str(tmp_path / "b" / "model-9"), ["--to", "tf"]),
        (str(tmp_path / "b" / "model-9"), str(tmp_path / "c_orbax"), ["--to", "orbax"]),
        (str(tmp_path / "c_orbax"), str(tmp_path / "d.npz"), []),
    ]
    (tmp_path / "b").mkdir()
    for a, b, extra in steps:
        code, _, err = run(capsys, "convert", a, b, *extra)
        assert code == 0, err
    first, last = tp.checkpoint.load(src), tp.checkpoint.load(str(tmp_path / "d.npz"))
    # orbax keeps model variables only; everything else survives every hop bit for bit
    assert sorted(last) == sorted(n for n in first if not tp.checkpoint.is_training_name(n))
    for name, value in last.items():
        np.testing.assert_array_equal(value, first[name])
    assert sorted(tp.checkpoint.load(str(tmp_path / "b"))) == sorted(first)


def test_convert_model_only(capsys, tmp_path) -> None:
    code, _, _ = run(capsys, "convert", "--model-only", str(WEIGHTS), str(tmp_path / "m.npz"))
    assert code == 0
    assert sorted(tp.checkpoint.load(str(tmp_path / "m.npz"))) == sorted(
        tp.checkpoint.load(str(WEIGHTS / "model-3.npz"))
    )


def test_diff_exit_codes(capsys, tmp_path) -> None:
    same = run(capsys, "diff", str(WEIGHTS / "model-3.npz"), str(WEIGHTS / "model-3.npz"))
    assert same[0] == 0 and "0 with different values" in same[1]
    code, out, _ = run(capsys, "diff", str(WEIGHTS / "model-3"), str(WEIGHTS / "model-3.npz"))
    assert code == 1 and "only in A: conv0/W/Momentum" in out
    flat = tp.checkpoint.load(str(WEIGHTS / "model-3.npz"))
    flat["fc/b"] = flat["fc/b"] + 0.5
    flat["fc/W"] = flat["fc/W"][:2]
    np.savez(tmp_path / "x.npz", **flat)
    code, out, _ = run(
        capsys, "diff", "--json", str(WEIGHTS / "model-3.npz"), str(tmp_path / "x.npz")
    )
    result = json.loads(out)
    assert code == 1
    assert result["values"] == [{"name": "fc/b", "max_abs_diff": pytest.approx(0.5)}]
    assert result["changed"] == [
        {"name": "fc/W", "a": [[4, 3], "float32"], "b": [[2, 3], "float32"]}
    ]
    code, _, _ = run(
        capsys, "diff", "--atol", "0.6", str(WEIGHTS / "model-3.npz"), str(tmp_path / "x.npz")
    )
    assert code == 1  # the shape change is still a difference


@pytest.mark.parametrize(
    "argv",
    [
        ["inspect", "/no/such/file.npz"],
        ["convert", "/no/such/model-1", "/tmp/out.npz"],
        ["diff", "/no/a.npz", "/no/b.npz"],
    ],
)
def test_bad_files_exit_2(capsys, argv) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and f"tpflax {argv[0]}: error: no such file" in err


@pytest.mark.parametrize("argv", [["frobnicate"], ["inspect"], ["diff", "a"]])
def test_bad_arguments_exit_2(capsys, argv) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "tpflax: error:" in capsys.readouterr().err


def test_corrupt_file_exits_2(capsys, tmp_path) -> None:
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    code, _, err = run(capsys, "inspect", str(tmp_path / "bad.npz"))
    assert code == 2 and "not a valid .npz file" in err


def test_help_version_and_positional_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    lines = capsys.readouterr().out.splitlines()
    assert exit_.value.code == 0 and lines == [
        f"tpflax {tp.__version__}",
        f"convolutions: {tp.conv_impl.active()}",
        f"host memory: {host_memory.describe()}",
    ]
    for argv in (["--help"], ["convert", "--help"], ["diff", "--help"], ["classify", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        text = capsys.readouterr().out
        assert "``" not in text, argv
    with pytest.raises(SystemExit):
        cli.main(["convert", "--help"])
    text = capsys.readouterr().out
    assert "the weight file to read" in text and "--force" in text and "orbax directory" in text


def test_convert_refuses_to_overwrite_without_force(capsys, tmp_path) -> None:
    src = str(WEIGHTS / "model-3.npz")
    for dst in (tmp_path / "out.npz", tmp_path / "tf" / "model-1", tmp_path / "orbax_dir"):
        code, _, err = run(capsys, "convert", src, str(dst))
        assert code == 0, err
        code, _, err = run(capsys, "convert", src, str(dst))
        assert code == 2 and err.count("\n") == 1 and "pass --force to replace it" in err
        code, _, err = run(capsys, "convert", src, str(dst), "--force")
        assert code == 0, err
    assert tp.checkpoint.detect_format(str(tmp_path / "orbax_dir")) == "orbax"
    code, out, _ = run(capsys, "convert", src, str(tmp_path / "x"), "--format", "npz")
    assert code == 0 and "(npz)" in out


def test_inspect_orbax_names_what_it_does_not_list(capsys, tmp_path) -> None:
    import optax

    flat = tp.checkpoint.load(str(WEIGHTS / "model-3.npz"))
    params, state = tp.checkpoint.unflatten(flat)
    opt_state = optax.sgd(0.1, momentum=0.9).init(params)
    tp.checkpoint.save_orbax(str(tmp_path / "ck"), params, state, opt_state=opt_state, step=7)
    code, out, _ = run(capsys, "inspect", str(tmp_path / "ck"))
    assert code == 0 and "also holds opt_state, step: training state, not listed" in out
    code, out, _ = run(capsys, "inspect", "--json", str(tmp_path / "ck"))
    assert json.loads(out)["not_listed"] == ["opt_state", "step"]


def test_classify_with_the_wrong_arch_says_what_does_not_fit(capsys, tmp_path) -> None:
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    code, _, err = run(
        capsys,
        "classify",
        "--arch",
        "ResNet18",
        "--weights",
        str(WEIGHTS / "model-3.npz"),
        str(tmp_path / "a.png"),
    )
    assert code == 2 and err.count("\n") == 1
    assert "does not fit --arch ResNet18: variables missing from the file: " in err
    assert "strict=False" not in err and len(err) < 400


def test_any_reader_failure_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch) -> None:
    import zipfile

    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("conv0/W.npy", b"\x93NUMPY garbage that is no array header")
    code, _, err = run(capsys, "inspect", str(bad))
    assert code == 2 and err.count("\n") == 1 and err.startswith("tpflax inspect: error: ")

    def explode(path):
        raise KeyError("a reader bug")

    monkeypatch.setattr(tp.checkpoint, "load", explode)
    code, _, err = run(capsys, "inspect", str(bad))
    assert code == 2 and err.count("\n") == 1 and "KeyError" in err and "-v shows" in err
    with pytest.raises(KeyError):
        cli.main(["inspect", "-v", str(bad)])


def _png(tmp_path) -> str:
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    return str(tmp_path / "a.png")


@pytest.mark.parametrize(
    "which, match",
    [
        ("weights", r"no such file or checkpoint: .*nope\.npz$"),
        ("image", r"no such image file: .*missing\.jpg$"),
        ("labels", r"no such labels file: .*synset\.txt$"),
    ],
)
def test_classify_checks_every_path_before_building_the_model(
    capsys, caplog, tmp_path, monkeypatch, which, match
) -> None:
    """Issue 18: a missing path was reported after the model was built and its 23-line
    shape log printed."""
    import tpflax.zoo.classify

    def build(*args, **kwargs):
        raise AssertionError("the model was built before the paths were checked")

    monkeypatch.setattr(tpflax.zoo.classify, "classify", build)
    weights = str(tmp_path / "nope.npz") if which == "weights" else str(WEIGHTS / "model-3.npz")
    image = str(tmp_path / "missing.jpg") if which == "image" else _png(tmp_path)
    labels = ["--labels", str(tmp_path / "synset.txt")] if which == "labels" else []
    with caplog.at_level(logging.INFO, logger="tpflax"):
        code, out, err = run(
            capsys, "classify", "--arch", "ResNet18", "--weights", weights, *labels, image
        )
    assert code == 2 and out == "" and err.count("\n") == 1
    assert re.search(match, err.strip()), err
    assert not caplog.records


def test_classify_shape_log_only_with_verbose(capsys, caplog, tmp_path) -> None:
    image = _png(tmp_path)
    argv = ["classify", "--arch", "ResNet18", "--weights", str(WEIGHTS / "model-3.npz"), image]
    with caplog.at_level(logging.INFO, logger="tpflax"):
        code, _, err = run(capsys, *argv)
    assert code == 2 and "does not fit --arch ResNet18" in err
    assert not [r for r in caplog.records if "-->" in r.getMessage()]
    assert logging.getLogger("tpflax").level == logging.INFO  # put back after the command
    for verbose in (["-v", *argv], [*argv[:1], "-v", *argv[1:]]):  # before or after the command
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="tpflax"):
            code, _, err = run(capsys, *verbose)
        shapes = [r.getMessage() for r in caplog.records if "-->" in r.getMessage()]
        assert code == 2 and "'linear': [1, 512] --> [1, 1000]" in shapes, (verbose, shapes)


def test_classify_missing_weights_is_one_line_in_a_real_run(tmp_path) -> None:
    """The command as a user runs it (its own process, tpflax's own log handler)."""
    import subprocess
    import sys

    argv = ["classify", "--arch", "ResNet18", "--weights", str(tmp_path / "nope.npz")]
    done = subprocess.run(
        [sys.executable, "-m", "tpflax.cli", *argv, _png(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert (
        done.stderr == f"tpflax classify: error: no such file or checkpoint: {tmp_path}/nope.npz\n"
    )


def test_classify_help_describes_every_option(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["classify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--top TOP how many classes to show per image (5)" in text
    assert "--json machine-readable output" in text
    assert "--data-format {NHWC,NCHW} the layout" in text
    assert "-v, --verbose log what is done (classify: the model's shape log)" in text
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["classify", "--arch", "ResNet18", "--weights", "w.npz", "--top", "0", "a.png"])
    assert exit_info.value.code == 2
    assert "--top: expected a positive integer, got '0'" in capsys.readouterr().err


def test_inspect_text_named_npz_is_not_called_a_pickle(capsys, tmp_path) -> None:
    """Issue 18: ``echo hello > junk.npz; tpflax inspect junk.npz`` said the file held
    pickled data and suggested ``allow_pickle=``."""
    (tmp_path / "junk.npz").write_text("hello\n")
    code, out, err = run(capsys, "inspect", str(tmp_path / "junk.npz"))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "junk.npz: not a valid .npz file: not a zip archive (it starts with b'hello\\n'" in err
    assert "pickle" not in err
