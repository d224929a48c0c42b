"""Crafted orbax checkpoints end in FormatError before orbax or tensorstore can hang, abort or
allocate: metadata that is a symlink to /dev/zero, a directory, broken or deeply nested JSON,
wrongly typed; a symlink leaving the checkpoint; an array claiming 10**12 elements."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tpflax as tp
from tpflax.checkpoint import FormatError, save_orbax


@pytest.fixture
def ckpt(tmp_path) -> str:
    path = str(tmp_path / "ckpt")
    save_orbax(path, {"w": np.arange(3, dtype=np.float32)}, {})
    return path


def _text(content: str):
    def make(f: str) -> None:
        with open(f, "w") as out:
            out.write(content)

    return make


def _replace(path: str, name: str, make) -> None:
    full = os.path.join(path, name)
    os.remove(full)
    make(full)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda f: os.symlink("/dev/zero", f), "a symlink leaving the checkpoint"),
        (os.mkdir, "orbax metadata must be a regular file"),
        (_text("{not json"), "not valid JSON"),
        (_text("[" * 100_000 + "]" * 100_000), "not valid JSON"),
        (_text(json.dumps([1, 2])), "orbax could not"),
        (_text(json.dumps({"tree_metadata": 7})), "orbax could not"),
    ],
    ids=["symlink-dev-zero", "directory", "broken-json", "deep-json", "list", "wrong-type"],
)
def test_bad_metadata_is_a_format_error(ckpt, make, match) -> None:
    _replace(ckpt, "_METADATA", make)
    with pytest.raises(FormatError, match=match):
        tp.checkpoint.load(ckpt)


def test_a_symlink_leaving_the_checkpoint_is_refused(ckpt, tmp_path) -> None:
    (tmp_path / "outside").write_bytes(b"secret")
    os.symlink(tmp_path / "outside", os.path.join(ckpt, "d", "link"))
    with pytest.raises(FormatError, match="a symlink leaving the checkpoint"):
        tp.checkpoint.load(ckpt)


def test_a_fifo_inside_is_refused(ckpt) -> None:
    os.mkfifo(os.path.join(ckpt, "pipe"))  # reading it would block forever
    with pytest.raises(FormatError, match="not a regular file or directory"):
        tp.checkpoint.load(ckpt)


def test_an_absurd_shape_is_refused_before_allocating(tmp_path) -> None:
    """A zarr array whose metadata claims 10**12 float32: orbax/tensorstore would abort the
    process (std::bad_alloc); tpflax refuses it from the metadata. Run in a subprocess, so
    that a regression kills that process, not the test run."""
    script = textwrap.dedent(
        f"""
        import json, os, numpy as np, orbax.checkpoint as ocp
        import tpflax as tp
        path = {str(tmp_path / "ckpt")!r}
        handler = ocp.StandardCheckpointHandler(use_ocdbt=False)
        tree = {{"params": {{"w": np.ones(3, np.float32)}}, "state": {{}}}}
        ocp.Checkpointer(handler).save(path, args=ocp.args.StandardSave(tree))
        zarray = os.path.join(path, "params.w", ".zarray")
        meta = json.load(open(zarray))
        meta["shape"] = meta["chunks"] = [10**12]
        json.dump(meta, open(zarray, "w"))
        try:
            tp.checkpoint.load(path)
        except tp.checkpoint.FormatError as e:
            print("FormatError:", e)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "FormatError:" in done.stdout and "byte budget" in done.stdout, done.stdout
