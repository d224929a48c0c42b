"""ConcatWith: both call styles, LinearWrap, and the errors tf.concat would raise."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpflax as tp


def test_concat_single_and_list() -> None:
    a, b, c = jnp.ones((2, 3)), jnp.zeros((2, 1)), jnp.full((2, 2), 2.0)
    np.testing.assert_array_equal(
        tp.ConcatWith.apply({}, {}, a, [b, c], 1)[0], np.concatenate([a, b, c], 1)
    )
    np.testing.assert_array_equal(
        tp.ConcatWith.apply({}, {}, a, b, -1)[0], np.concatenate([a, b], 1)
    )
    out = tp.transform(lambda x: tp.LinearWrap(x).ConcatWith(x * 2, 0)())
    y, _ = out.apply({}, {}, a)
    assert y.shape == (4, 3)


@pytest.mark.parametrize(
    ("other", "dim", "error", "pattern"),
    [
        (jnp.ones((3, 3)), 1, ValueError, r"tensor 0 has shape \(3, 3\), which does not match"),
        (jnp.ones((2, 3), jnp.bfloat16), 1, TypeError, r"tensor 0 has dtype bfloat16"),
        (jnp.ones((2, 3)), 2, ValueError, r"dim \(=2\) is out of range for a 2-D input"),
        (jnp.ones((2, 3)), 1.0, TypeError, r"dim must be an int"),
        (
            [jnp.ones((2, 3)), "x"],
            1,
            TypeError,
            r"tensor must be an array or a list of arrays; item 1 is str",
        ),
    ],
)
def test_concat_bad_input(other, dim, error, pattern) -> None:
    net = tp.transform(lambda x: tp.ConcatWith("cat", x, other, dim))
    with pytest.raises(error, match=rf"ConcatWith 'cat': {pattern}"):
        net.init(jax.random.key(0), jnp.ones((2, 3)))
