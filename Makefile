# The README's two commands are `make demo` and `make test`; both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tpflax-installed
GOLDEN_VENV := .venv-golden
GOLDEN_STAMP := $(GOLDEN_VENV)/.installed

.PHONY: demo test test-slow test-tf lint format docs golden golden-digits golden-tf-ops golden-check bench fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m tpflax.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist worksteal -m "not slow and not tensorflow" src tests

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadgroup -m "slow" src tests

# Checks that run real TensorFlow from the reference venv (.venv-golden).
test-tf: $(STAMP) $(GOLDEN_STAMP)
	$(BIN)/python -m pytest -q -m "tensorflow" src tests

lint: $(STAMP)
	$(BIN)/ruff check src tests tools benchmarks
	$(BIN)/ruff format --check src tests tools benchmarks
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests tools benchmarks
	$(BIN)/ruff check --fix src tests tools benchmarks

# The documentation site (mkdocs.yml, docs/) into build/site; --strict fails on any warning:
# a broken link or cross-reference, a page missing from the navigation. `make test` does not
# need the docs extra: it runs every code block of the pages and checks the API reference.
DOCS_STAMP := $(VENV)/.tpflax-docs-installed

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict

# The reference: real tensorpack 0.11 on TensorFlow 2.21 (CPU), in its own venv.
$(GOLDEN_STAMP): tools/golden/requirements.txt
	$(PYTHON) -m venv $(GOLDEN_VENV)
	$(GOLDEN_VENV)/bin/python -m pip install -q --upgrade pip
	$(GOLDEN_VENV)/bin/python -m pip install -q -r tools/golden/requirements.txt
	touch $(GOLDEN_STAMP)

TF_ENV := TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2

# Layer and model fixtures; the weight files (tensorpack trains and saves, tpflax converts
# and writes back, tensorpack restores tpflax's files: tools/golden/weights.py); the model
# zoo's names and logits (tools/golden/zoo.py, ~7 minutes).
golden: $(GOLDEN_STAMP) $(STAMP)
	$(TF_ENV) $(GOLDEN_VENV)/bin/python tools/golden/generate.py --out tests/golden
	rm -rf tests/golden/weights
	$(TF_ENV) $(GOLDEN_VENV)/bin/python tools/golden/weights.py train --out tests/golden/weights
	$(BIN)/python tools/golden/export_tpflax.py --dir tests/golden/weights
	$(TF_ENV) $(GOLDEN_VENV)/bin/python tools/golden/weights.py roundtrip --dir tests/golden/weights
	$(TF_ENV) $(GOLDEN_VENV)/bin/python tools/golden/zoo.py --out tests/golden/zoo
	$(TF_ENV) $(GOLDEN_VENV)/bin/python tools/golden/tf_optimizers.py --out tests/golden/tf_optimizers
	$(TF_ENV) $(GOLDEN_VENV)/bin/python tools/golden/tf_training.py --out tests/golden/tf_training
	$(TF_ENV) $(GOLDEN_VENV)/bin/python tools/golden/tf_gradproc.py --out tests/golden/gradproc
	$(TF_ENV) $(GOLDEN_VENV)/bin/python tools/golden/tf_layers.py --out tests/golden
	$(TF_ENV) $(GOLDEN_VENV)/bin/python tools/golden/tf_compat_models.py --out tests/golden
	$(TF_ENV) $(GOLDEN_VENV)/bin/python tools/golden/tf_batch_norm_large.py --out tests/golden/batch_norm_large
	$(MAKE) golden-digits
	$(MAKE) golden-tf-ops

# TensorFlow's ops, nn functions and initializers that tpflax.compat.tf pins (~10 s).
golden-tf-ops: $(GOLDEN_STAMP)
	$(TF_ENV) $(GOLDEN_VENV)/bin/python tools/golden/tf_ops.py --out tests/golden/tf_ops

# The demo's embedded default: tensorpack trains a convnet on the 8x8 digits (~10 s).
golden-digits: $(GOLDEN_STAMP)
	$(TF_ENV) $(GOLDEN_VENV)/bin/python tools/golden/digits.py --out src/tpflax/demo_data

# Regenerates the layer and model fixtures in a temporary folder and compares them with the
# committed ones: the reference still says what the tests assume.
golden-check: $(GOLDEN_STAMP)
	rm -rf .golden-check && mkdir .golden-check
	$(TF_ENV) $(GOLDEN_VENV)/bin/python tools/golden/generate.py --out .golden-check
	$(GOLDEN_VENV)/bin/python tools/golden/compare.py .golden-check tests/golden
	rm -rf .golden-check

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/checkpoint_load.py
	$(BIN)/python benchmarks/fold_batchnorm.py
	$(BIN)/python benchmarks/conv_lowering.py
	$(BIN)/python benchmarks/vs_tensorpack.py
	$(BIN)/python benchmarks/bfloat16.py
	$(BIN)/python benchmarks/gpu.py
	$(BIN)/python benchmarks/bn_variance.py

# The loaders against mutated files for 5 minutes with fresh seeds (make test runs a few
# seconds of it); findings are saved to tests/fuzz_corpus/, which make test replays.
fuzz: $(STAMP)
	$(BIN)/python tests/fuzz_formats.py --seconds 300

clean:
	rm -rf $(VENV) $(GOLDEN_VENV) .pytest_cache .ruff_cache .mypy_cache
