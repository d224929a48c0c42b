"""Every layer case from real tensorpack (tests/golden/*.npz) replayed through tpflax."""

from __future__ import annotations

import pytest
from golden_replay import check_fixture, fixtures, layer_fn

# Large-mean BatchNorm cases are held to float64 instead (tests/test_batch_norm_numerics.py).
LAYER_FIXTURES = [
    fx for fx in fixtures("*.npz") if "layer" in fx.spec and "large_mean" not in fx.id
]


def test_fixtures_exist() -> None:
    assert len(LAYER_FIXTURES) >= 50


@pytest.mark.parametrize("fx", LAYER_FIXTURES, ids=lambda fx: fx.id)
def test_layer_matches_tensorpack(fx) -> None:
    check_fixture(fx, layer_fn(fx.spec))
