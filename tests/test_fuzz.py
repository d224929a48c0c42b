"""The seeded fuzz run (tests/fuzz_formats.py) over .npz, TensorFlow checkpoints and orbax,
bounded to a few seconds, and the regression corpus: every crashing input found so far (the
first were found by running the fuzzer against the loaders before their hardening). Each
must end in FormatError or in a load of exactly the unmutated file's variables. `make fuzz`
runs longer with fresh seeds."""

from __future__ import annotations

import tempfile

import fuzz_formats
import pytest

CASES = {"npz": 150, "tf": 150, "orbax": 25}


@pytest.fixture(scope="module")
def pristine() -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in fuzz_formats.FORMATS:
            folder = fuzz_formats.pathlib.Path(tmp) / fmt
            folder.mkdir()
            path = fuzz_formats.seed_files(folder, fmt)
            out[fmt] = fuzz_formats.tp.checkpoint.load(str(path))
    return out


def test_the_corpus_is_there() -> None:
    assert len(fuzz_formats.corpus_cases()) >= 20


def _case_id(case: tuple) -> str:
    fmt, path = case
    return f"{fmt}-{path.relative_to(fuzz_formats.CORPUS / fmt).parts[0]}"


@pytest.mark.parametrize("case", fuzz_formats.corpus_cases(), ids=_case_id)
# orbax's abandoned background reads report "Event loop is closed" as unraisable: noise
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_corpus_case(case, pristine) -> None:
    fmt, path = case
    problem = fuzz_formats.check(path, pristine[fmt])
    assert problem is None, problem


def test_a_message_suggesting_unpickling_is_a_finding(tmp_path, monkeypatch) -> None:
    """The corpus and the fuzz run fail on NumPy's advice to load "unsafely" with
    ``allow_pickle=``, as a reader that passed NumPy's message through would give."""

    def numpy_advice(path: str) -> dict:
        raise fuzz_formats.FormatError(
            f"{path}: not a valid .npz file (This file contains pickled (object) data. If you "
            "trust the file you can load it unsafely using the `allow_pickle=` keyword argument)"
        )

    monkeypatch.setattr(fuzz_formats.tp.checkpoint, "load", numpy_advice)
    problem = fuzz_formats.check(tmp_path / "junk.npz")
    assert problem is not None and "suggests unpickling" in problem


@pytest.mark.parametrize("fmt", fuzz_formats.FORMATS)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_seeded_fuzz(fmt) -> None:
    findings: list[str] = []
    fuzz_formats.run(fmt, seed=12, cases=CASES[fmt], report=findings.append, save=False)
    assert not findings, "\n\n".join(findings)
