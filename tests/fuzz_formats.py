"""A seeded mutation fuzzer for tpflax's loaders: ``.npz``, TensorFlow checkpoints and orbax.

Each case starts from a valid file that tpflax wrote, mutates its bytes (bit flips, random
bytes, runs of zeros or 0xff, truncation, duplicated or deleted chunks) and loads it. The
only acceptable outcomes are a load (a dict of arrays) or ``tp.checkpoint.FormatError``, each
within a time bound; anything else is a finding, saved to the regression corpus
(``tests/fuzz_corpus/<format>/``) that ``tests/test_fuzz.py`` replays on every ``make test``.

``make test`` runs a few hundred seeded cases (tests/test_fuzz.py); ``make fuzz`` runs this
file for longer with fresh seeds: ``python tests/fuzz_formats.py --seconds 300``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable

import numpy as np

import tpflax as tp
from tpflax.checkpoint import FormatError

CORPUS = pathlib.Path(__file__).with_name("fuzz_corpus")
FORMATS = ("npz", "tf", "orbax")
TIME_LIMIT = 5.0  # seconds for one load: more is a hang, for files this small
# NumPy's advice for what it takes for a pickle ("load it unsafely using the `allow_pickle=`
# keyword"): no message of tpflax's may suggest unpickling.
UNSAFE_ADVICE = re.compile(r"allow_pickle|pickle\.loads?\(|unsafely", re.I)


def variables() -> dict[str, np.ndarray]:
    rng = np.random.RandomState(0)
    return {
        "conv0/W": rng.randn(3, 3, 2, 4).astype(np.float32),
        "bn/mean/EMA": np.arange(4, dtype=np.float32),
        "fc/b": np.zeros(3, np.float64),
    }


def seed_files(folder: pathlib.Path, fmt: str) -> pathlib.Path:
    """A valid checkpoint of ``fmt`` in ``folder``; returns the path to load."""
    flat = variables()
    if fmt == "npz":
        path = folder / "model.npz"
        tp.checkpoint.save_npz(str(path), flat)
        return path
    if fmt == "tf":
        prefix = folder / "model"
        tp.checkpoint.save_tf_checkpoint(str(prefix), flat)
        return prefix
    params, state = tp.checkpoint.unflatten(flat)
    path = folder / "ckpt"
    tp.checkpoint.save_orbax(str(path), params, state)
    return path


def targets(path: pathlib.Path, fmt: str) -> list[pathlib.Path]:
    """The files a mutation may hit."""
    if fmt == "npz":
        return [path]
    if fmt == "tf":
        return sorted(path.parent.glob(path.name + ".*"))
    return sorted(p for p in path.rglob("*") if p.is_file())


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        if not b:
            b = bytearray(rng.randbytes(rng.randint(0, 64)))
            continue
        op = rng.randrange(7)
        i = rng.randrange(len(b))
        if op == 0:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[i] = rng.randrange(256)
        elif op == 2:
            n = rng.randint(1, 16)
            b[i : i + n] = bytes([rng.choice((0, 0xFF))]) * n
        elif op == 3:
            del b[i:]
        elif op == 4:
            n = rng.randint(1, 64)
            b[i:i] = b[i : i + n]
        elif op == 5:
            del b[i : i + rng.randint(1, 64)]
        else:  # an integer field set to something extreme
            b[i : i + 8] = rng.choice((2**63 - 1, 2**32 - 1, 10**12)).to_bytes(8, "little")
    return bytes(b)


OUTCOMES: dict[str, int] = {"loaded": 0, "FormatError": 0, "finding": 0}


def check(path: pathlib.Path, pristine: dict[str, np.ndarray] | None = None) -> str | None:
    """Loads ``path``: ``None`` if that ends in a ``FormatError`` (whose message does not
    suggest unpickling) or a load, in time; else what went wrong. With ``pristine`` (the
    unmutated file's load), a load must return exactly it: every format here checksums its
    data, so a mutation may be harmless, never a lie. Counts the outcomes in ``OUTCOMES``."""
    start = time.perf_counter()
    problem = None
    try:
        out = tp.checkpoint.load(str(path))
        if not all(isinstance(v, np.ndarray) for v in out.values()):
            problem = "a load returned something other than arrays"
        elif pristine is not None and not _same(out, pristine):
            problem = f"a load that lies: {_describe(out)} instead of {_describe(pristine)}"
        outcome = "loaded"
    except FormatError as e:
        outcome = "FormatError"
        if UNSAFE_ADVICE.search(str(e)):
            problem = f"a message that suggests unpickling (SECURITY.md forbids it): {e}"
    except Exception:  # the finding
        problem = traceback.format_exc(limit=8)
    took = time.perf_counter() - start
    if problem is None and took > TIME_LIMIT:
        problem = f"took {took:.1f} s"
    OUTCOMES["finding" if problem else outcome] += 1
    return problem


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return sorted(a) == sorted(b) and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k])
        for k in a
    )


def _describe(flat: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in sorted(flat.items()))


def run(fmt: str, seed: int, cases: int, report: Callable[[str], None], save: bool = True) -> int:
    """``cases`` mutated inputs of ``fmt`` from ``seed``; returns how many were findings."""
    rng = random.Random(seed)
    findings = 0
    with tempfile.TemporaryDirectory() as tmp:
        pristine = pathlib.Path(tmp) / "pristine"
        pristine.mkdir()
        seed_path = seed_files(pristine, fmt)
        expected = tp.checkpoint.load(str(seed_path))
        for case in range(cases):
            work = pathlib.Path(tmp) / f"case{case}"
            shutil.copytree(pristine, work, symlinks=True)
            path = work / seed_path.relative_to(pristine)
            files = targets(path, fmt)
            victim = rng.choice(files)
            victim.write_bytes(mutate(victim.read_bytes(), rng))
            problem = check(path, expected)
            if problem is not None:
                findings += 1
                where = victim.relative_to(work)
                report(f"{fmt} seed {seed} case {case} ({where}): {problem}")
                if save:
                    _save(work, fmt)
            shutil.rmtree(work)
    return findings


def _save(work: pathlib.Path, fmt: str) -> None:
    """Keeps a finding: its whole folder, named by a hash of its contents."""
    digest = hashlib.sha256()
    for p in sorted(work.rglob("*")):
        if p.is_file():
            digest.update(str(p.relative_to(work)).encode() + p.read_bytes())
    dest = CORPUS / fmt / digest.hexdigest()[:16]
    if not dest.exists():
        shutil.copytree(work, dest, symlinks=True)


def corpus_cases() -> list[tuple[str, pathlib.Path]]:
    """Every saved finding, as ``(format, the path to load)``: the file or prefix the fuzzer
    names (``model.npz``, ``model``, ``ckpt``) when the case has it, else the case's folder
    (a TensorFlow checkpoint directory, found by its ``checkpoint`` state file)."""
    out = []
    for fmt in FORMATS:
        for case in sorted((CORPUS / fmt).glob("*")) if (CORPUS / fmt).is_dir() else []:
            name = {"npz": "model.npz", "tf": "model", "orbax": "ckpt"}[fmt]
            named = case / name
            there = named.exists() or named.with_name(name + ".index").exists()
            out.append((fmt, named if there else case))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300, help="total time budget")
    parser.add_argument("--seed", type=int, default=None, help="default: from the clock")
    parser.add_argument("--formats", default=",".join(FORMATS))
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    formats = args.formats.split(",")
    deadline = time.monotonic() + args.seconds
    total = findings = 0
    while time.monotonic() < deadline:
        for fmt in formats:
            findings += run(fmt, seed, 20, print)
            total += 20
        seed += 1
    print(f"fuzz: {total} cases, {OUTCOMES} (findings saved under {CORPUS})")
    return 1 if findings else 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
