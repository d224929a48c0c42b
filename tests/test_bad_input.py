"""Each kind of bad input raises an error naming the layer (full scope), argument and
expectation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpflax as tp


def _init(fn, *inputs):
    return tp.transform(fn).init(jax.random.key(0), *inputs)


def _scoped(fn):
    def net(x):
        with tp.variable_scope("group0"):
            return fn(x)

    return net


@pytest.mark.parametrize(
    ("call", "shape", "pattern"),
    [
        (lambda x: tp.Conv2D("c", x, 4, 3), (2, 5, 5), r"Conv2D 'group0/c': inputs must be 4-D"),
        (lambda x: tp.MaxPooling("p", x, 2), (2, 5), r"MaxPooling 'group0/p': inputs must be 4-D"),
        (lambda x: tp.AvgPooling("p", x, 2), (2, 5), r"AvgPooling 'group0/p': inputs must be 4-D"),
        (lambda x: tp.GlobalAvgPooling("g", x), (2, 5), r"GlobalAvgPooling 'group0/g': x must"),
        (lambda x: tp.BatchNorm("bn", x), (2, 3, 4), r"BatchNorm 'group0/bn': inputs must be 2-D"),
        (lambda x: tp.FullyConnected("fc", x, 3), (4,), r"FullyConnected 'group0/fc': inputs"),
    ],
)
def test_wrong_rank(call, shape, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        _init(_scoped(call), jnp.ones(shape))


@pytest.mark.parametrize(
    "call",
    [
        lambda x: tp.Conv2D("c", x, 4, 3, data_format="NHCW"),
        lambda x: tp.MaxPooling("c", x, 2, data_format="channel_last"),
        lambda x: tp.BatchNorm("c", x, data_format="nhwc"),
        lambda x: tp.GlobalAvgPooling("c", x, data_format="NWHC"),
    ],
)
def test_data_format_typo(call) -> None:
    with pytest.raises(ValueError, match=r"'group0/c': data_format must be one of 'NHWC'"):
        _init(_scoped(call), jnp.ones((1, 4, 4, 2)))


def test_unknown_channel_count() -> None:
    def net(x):
        return tp.Conv2D("c", x, 4, 3)

    model = tp.transform(net)
    shape = jax.export.symbolic_shape("b, h, w, c")
    spec = jax.ShapeDtypeStruct(shape, jnp.float32)
    with pytest.raises(ValueError, match=r"Conv2D 'c': the channel dimension \(axis 3\).*known"):
        jax.eval_shape(lambda x: model.init(jax.random.key(0), x), spec)


def test_unknown_batch_is_fine_for_conv() -> None:
    model = tp.transform(lambda x: tp.Conv2D("c", x, 4, 3))
    spec = jax.ShapeDtypeStruct(jax.export.symbolic_shape("b, 5, 5, 2"), jnp.float32)
    params = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), spec)[0]
    assert params["c"]["W"].shape == (3, 3, 2, 4)


def test_bad_padding_and_kernel() -> None:
    x = jnp.ones((1, 4, 4, 2))
    with pytest.raises(ValueError, match=r"Conv2D 'c': padding must be 'same' or 'valid'"):
        _init(lambda x: tp.Conv2D("c", x, 4, 3, padding="full"), x)
    with pytest.raises(ValueError, match=r"Conv2D 'c': kernel_size must be an int or a pair"):
        _init(lambda x: tp.Conv2D("c", x, 4, (3, 3, 3)), x)
    with pytest.raises(ValueError, match=r"Conv2D 'c': filters must be a positive int; got 0"):
        _init(lambda x: tp.Conv2D("c", x, 0, 3), x)


def test_split_must_divide_channels() -> None:
    with pytest.raises(ValueError, match=r"channels \(=6\) must be divisible by split \(=4\)"):
        _init(lambda x: tp.Conv2D("c", x, 8, 3, split=4), jnp.ones((1, 4, 4, 6)))
    with pytest.raises(ValueError, match=r"filters \(=6\) must be divisible by split \(=4\)"):
        _init(lambda x: tp.Conv2D("c", x, 6, 3, split=4), jnp.ones((1, 4, 4, 8)))


def test_unknown_and_missing_arguments() -> None:
    x = jnp.ones((1, 4, 4, 2))
    with pytest.raises(TypeError, match=r"Conv2D 'c': unknown argument 'kernel' \(keyword\)"):
        _init(lambda x: tp.Conv2D("c", x, 4, kernel=3), x)
    with pytest.raises(TypeError, match=r"Conv2D 'c': missing required argument\(s\) 'kernel_"):
        _init(lambda x: tp.Conv2D("c", x, 4), x)
    with pytest.raises(TypeError, match=r"Conv2D 'c': takes at most 2 positional argument"):
        _init(lambda x: tp.Conv2D("c", x, 4, 3, 2), x)
    with pytest.raises(TypeError, match=r"BatchNorm 'bn': takes at most 0 positional"):
        _init(lambda x: tp.BatchNorm("bn", x, 3), x)


def test_non_array_input() -> None:
    with pytest.raises(TypeError, match=r"FullyConnected 'fc': inputs must be an array"):
        _init(lambda x: tp.FullyConnected("fc", [[1.0, 2.0]], 3), jnp.ones(1))


def test_integer_input_is_not_cast() -> None:
    with pytest.raises(TypeError, match=r"Conv2D 'c': inputs must have a floating dtype"):
        _init(lambda x: tp.Conv2D("c", x, 4, 3), jnp.ones((1, 4, 4, 2), jnp.int32))


def test_batchnorm_options() -> None:
    x = jnp.ones((4, 3, 3, 2))
    with pytest.raises(ValueError, match=r"BatchNorm 'bn': ema_update must be one of"):
        _init(lambda x: tp.BatchNorm("bn", x, ema_update="sometimes"), x)
    with pytest.raises(ValueError, match=r"BatchNorm 'bn': axis must be 1 or 3"):
        _init(lambda x: tp.BatchNorm("bn", x, axis=2), x)
    with pytest.raises(ValueError, match=r"sync_statistics='nccl' is TensorFlow-specific"):
        _init(lambda x: tp.BatchNorm("bn", x, sync_statistics="nccl"), x)
    model = tp.transform(lambda x: tp.BatchNorm("bn", x, virtual_batch_size=3))
    params, state = model.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"virtual_batch_size \(=3\) must divide the batch"):
        model.apply(params, state, x, is_training=True)


def test_bad_initializer() -> None:
    with pytest.raises(TypeError, match=r"FullyConnected 'fc': kernel_initializer must be a JAX"):
        _init(lambda x: tp.FullyConnected("fc", x, 3, kernel_initializer=0.1), jnp.ones((2, 2)))


def test_dropout_needs_rng_only_in_training() -> None:
    model = tp.transform(lambda x: tp.Dropout("drop", x, rate=0.5))
    x = jnp.ones((4, 4))
    params, state = model.init(jax.random.key(0), x)
    y, _ = model.apply(params, state, x)
    assert bool(jnp.all(y == x))
    with pytest.raises(ValueError, match=r"Dropout 'drop': needs a random key in training"):
        model.apply(params, state, x, is_training=True)
    with pytest.raises(ValueError, match=r"Dropout 'drop': rate must be a number in \[0, 1\)"):
        _init(lambda x: tp.Dropout("drop", x, rate=1.0), x)
    with pytest.raises(TypeError, match=r"'keep_prob' and 'rate' both set 'rate'"):
        _init(lambda x: tp.Dropout("drop", x, keep_prob=0.5, rate=0.5), x)


# ------------------------------------------------ what a hostile user hit (issue 13)
def test_layer_names_with_empty_parts_fail_at_the_layer() -> None:
    x = jnp.ones((1, 4, 4, 2))
    for name in ("a//b", "/abs", "abs/"):
        with pytest.raises(ValueError, match=r"Conv2D: the layer name must be non-empty parts"):
            tp.transform(lambda x, n=name: tp.Conv2D(n, x, 2, 3)).init(jax.random.key(0), x)


def test_numpy_bool_is_training_and_a_clear_type_name() -> None:
    x = jnp.ones((2, 3))
    model = tp.transform(lambda x: tp.BatchNorm("bn", x))
    params, state = model.init(jax.random.key(0), x)
    _, new_state = model.apply(params, state, x, is_training=np.bool_(True))
    assert float(new_state["bn"]["mean"]["EMA"][0]) != 0.0  # it trained
    with pytest.raises(TypeError, match=r"is_training must be a Python bool; got numpy\.int64"):
        model.apply(params, state, x, is_training=np.int64(1))


def test_dropout_positional_keep_prob_zero_names_keep_prob() -> None:
    x = jnp.ones((2, 3))
    with pytest.raises(ValueError, match=r"Dropout: keep_prob .* must be a number in \(0, 1\]"):
        tp.transform(lambda x: tp.Dropout(x, 0)).apply(
            {}, {}, x, is_training=True, rng=jax.random.key(0)
        )


def test_a_params_leaf_that_is_no_array() -> None:
    x = jnp.ones((2, 3))
    model = tp.transform(lambda x: tp.FullyConnected("fc", x, 2))
    with pytest.raises(TypeError, match=r"variable 'fc/W' in params must be an array of shape"):
        model.apply({"fc": {"W": 1.0, "b": jnp.zeros(2)}}, {}, x)


def test_batchnorm_negative_epsilon_and_empty_batch() -> None:
    x = jnp.ones((2, 4, 4, 3))
    with pytest.raises(ValueError, match=r"BatchNorm 'bn': epsilon must be a number >= 0"):
        tp.transform(lambda x: tp.BatchNorm("bn", x, epsilon=-1.0)).init(jax.random.key(0), x)
    model = tp.transform(lambda x: tp.BatchNorm("bn", x))
    params, state = model.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"at least one value per channel; got .* \[0, 4, 4, 3\]"):
        model.apply(params, state, jnp.ones((0, 4, 4, 3)), is_training=True)
    y, _ = model.apply(params, state, jnp.ones((0, 4, 4, 3)))  # inference: fine, empty
    assert y.shape == (0, 4, 4, 3)
