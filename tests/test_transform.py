"""transform, variable_scope, naming, reuse, capture and the errors around them."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpflax as tp


def _shapes(tree):
    return jax.tree_util.tree_map(jnp.shape, tree)


def test_nested_scopes_name_variables_like_tensorpack() -> None:
    def net(x):
        with tp.variable_scope("group0"), tp.variable_scope("block1"):
            x = tp.Conv2D("conv1", x, 4, 3, activation=tp.BNReLU, use_bias=False)
        return tp.BatchNorm("bn", x)

    params, state = tp.transform(net).init(jax.random.key(0), jnp.ones((2, 5, 5, 3)))
    flat = tp.checkpoint.flatten(params, state)
    assert sorted(flat) == [
        "bn/beta",
        "bn/gamma",
        "bn/mean/EMA",
        "bn/variance/EMA",
        "group0/block1/conv1/W",
        "group0/block1/conv1/bn/beta",
        "group0/block1/conv1/bn/gamma",
        "group0/block1/conv1/bn/mean/EMA",
        "group0/block1/conv1/bn/variance/EMA",
    ]
    assert "mean" not in params["bn"]
    assert state["bn"]["mean"]["EMA"].shape == (4,)


def test_layer_name_used_twice_is_an_error() -> None:
    def net(x):
        x = tp.FullyConnected("fc", x, 3)
        return tp.FullyConnected("fc", x, 3)

    with pytest.raises(ValueError, match=r"FullyConnected 'fc'.*used twice in scope ''"):
        tp.transform(net).init(jax.random.key(0), jnp.ones((2, 3)))


def test_layer_without_variables_used_twice_is_an_error() -> None:
    def net(x):
        with tp.variable_scope("g"):
            x = tp.MaxPooling("pool", x, 2)
            return tp.MaxPooling("pool", x, 2)

    with pytest.raises(ValueError, match=r"MaxPooling 'g/pool'.*used twice in scope 'g'"):
        tp.transform(net).init(jax.random.key(0), jnp.ones((1, 8, 8, 1)))


def test_reuse_shares_variables() -> None:
    def shared(x):
        with tp.variable_scope("tower"):
            a = tp.FullyConnected("fc", x, 3)
        with tp.variable_scope("tower", reuse=True):
            b = tp.FullyConnected("fc", x, 3)
        return a - b

    model = tp.transform(shared)
    x = jnp.ones((2, 4))
    params, state = model.init(jax.random.key(0), x)
    assert _shapes(params) == {"tower": {"fc": {"W": (4, 3), "b": (3,)}}}
    y, _ = model.apply(params, state, x)
    assert float(jnp.max(jnp.abs(y))) == 0.0


def test_reuse_of_a_variable_never_created() -> None:
    def net(x):
        with tp.variable_scope("tower", reuse=True):
            return tp.FullyConnected("fc", x, 3)

    with pytest.raises(ValueError, match="variable 'tower/fc/W' does not exist"):
        tp.transform(net).init(jax.random.key(0), jnp.ones((2, 4)))


def test_non_string_layer_name() -> None:
    def net(x):
        return tp.Conv2D(x, 4, 3)

    with pytest.raises(TypeError, match=r"Conv2D: the first argument must be the layer's name"):
        tp.transform(net).init(jax.random.key(0), jnp.ones((1, 4, 4, 1)))


def test_named_layer_outside_transform() -> None:
    with pytest.raises(RuntimeError, match=r"Conv2D 'conv0' must run inside .*tp.transform"):
        tp.Conv2D("conv0", jnp.ones((1, 4, 4, 1)), 4, 3)


def test_is_training_outside_transform() -> None:
    with pytest.raises(RuntimeError, match=r"tp.is_training\(\) must run inside"):
        tp.is_training()


def test_params_from_another_model() -> None:
    small = tp.transform(lambda x: tp.FullyConnected("fc", x, 3))
    other = tp.transform(lambda x: tp.FullyConnected("fc1", x, 3))
    wide = tp.transform(lambda x: tp.FullyConnected("fc", x, 5))
    x = jnp.ones((2, 4))
    params, state = small.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"FullyConnected 'fc1': params has no variable 'fc1/W'"):
        other.apply(params, state, x)
    with pytest.raises(ValueError, match=r"variable 'fc/W' in params has shape \[4, 3\].*\[4, 5\]"):
        wide.apply(params, state, x)


def test_unused_params_are_logged(caplog) -> None:
    model = tp.transform(lambda x: tp.FullyConnected("fc", x, 3))
    x = jnp.ones((2, 4))
    params, state = model.init(jax.random.key(0), x)
    params = {**params, "extra": {"W": jnp.ones(2)}}
    with caplog.at_level(logging.WARNING, logger="tpflax"):
        model.apply(params, state, x)
    assert "not used by the model: extra/W" in caplog.text


def test_is_training_must_be_a_python_bool() -> None:
    model = tp.transform(lambda x: tp.BatchNorm("bn", x))
    x = jnp.ones((2, 3))
    params, state = model.init(jax.random.key(0), x)
    with pytest.raises(TypeError, match=r"is_training must be a Python bool.*static_argnames"):
        jax.jit(model.apply)(params, state, x, is_training=True)


def test_bad_rng() -> None:
    model = tp.transform(lambda x: tp.FullyConnected("fc", x, 3))
    with pytest.raises(TypeError, match="rng must be a JAX random key"):
        model.init(0, jnp.ones((2, 3)))


def test_is_training_inside_the_model() -> None:
    seen = []

    def net(x):
        seen.append(tp.is_training())
        return x

    model = tp.transform(net)
    model.init(jax.random.key(0), jnp.ones(1), is_training=True)
    model.apply({}, {}, jnp.ones(1))
    assert seen == [True, False]


def test_capture_named_outputs_inside_linear_wrap() -> None:
    def net(x):
        with tp.variable_scope("group0"):
            return tp.LinearWrap(x).FullyConnected("fc0", 3).FullyConnected("fc1", 2)()

    model = tp.transform(net)
    x = jnp.ones((2, 4))
    params, state = model.init(jax.random.key(0), x)
    _, _, captured = model.apply(params, state, x, capture=["group0/fc0/output"])
    assert captured["group0/fc0/output"].shape == (2, 3)
    with pytest.raises(ValueError, match="capture='fc9/output' is no layer output"):
        model.apply(params, state, x, capture=["fc9/output"])


def test_shape_log_once_per_layer_in_tensorpack_format(caplog) -> None:
    def net(x):
        return tp.Conv2D("conv0", x, 32, 3)

    model = tp.transform(net)
    x = jnp.ones((8, 28, 28, 1))
    with caplog.at_level(logging.INFO, logger="tpflax"):
        params, state = model.init(jax.random.key(0), x)
        model.apply(params, state, x)
    lines = [r.getMessage() for r in caplog.records if "conv0" in r.getMessage()]
    assert lines == ["'conv0': [8, 28, 28, 1] --> [8, 28, 28, 32]"]


def test_state_structure_is_preserved_and_not_mutated() -> None:
    model = tp.transform(lambda x: tp.BatchNorm("bn", x))
    x = jnp.arange(6.0).reshape(3, 2)
    params, state = model.init(jax.random.key(0), x)
    before = jax.tree_util.tree_map(lambda a: a, state)
    _, new_state = model.apply(params, state, x, is_training=True)
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)
    assert float(state["bn"]["mean"]["EMA"][0]) == float(before["bn"]["mean"]["EMA"][0]) == 0.0
    assert float(new_state["bn"]["mean"]["EMA"][0]) != 0.0


def test_regularize_cost_logs_matched_names_once_per_model(caplog) -> None:
    def net(x):
        y = tp.FullyConnected("fc0", x, 3)
        return tp.FullyConnected("fc1", y, 2), tp.regularize_cost("fc.*/W", jnp.sum)

    model = tp.transform(net)
    x = jnp.ones((2, 4))
    with caplog.at_level(logging.INFO, logger="tpflax"):
        params, state = model.init(jax.random.key(0), x, is_training=True)
        for _ in range(2):
            (_, cost), _ = model.apply(params, state, x, is_training=True)
    want = float(jnp.sum(params["fc0"]["W"]) + jnp.sum(params["fc1"]["W"]))
    assert abs(float(cost) - want) < 1e-5
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs.count("The following tensors will be regularized: fc0/W:0, fc1/W:0") == 1
    (_, cost), _ = model.apply(params, state, x)
    assert float(cost) == 0.0
    outside = tp.regularize_cost("fc1/W", jnp.sum, params=params)
    assert abs(float(outside) - float(jnp.sum(params["fc1"]["W"]))) < 1e-6


def test_registered_layer_over_auto_reuse_shares_its_scope() -> None:
    """FasterRCNN's rpn_head: layer_register over auto_reuse_variable_scope, called as 'rpn'
    on every FPN level, shares rpn/* as in tensorpack (the golden model_fpn_rpn_head_train
    pins the numbers)."""

    @tp.layer_register()
    @tp.auto_reuse_variable_scope
    def shared_head(x):
        return tp.FullyConnected("fc", x, 2)

    model = tp.transform(lambda a, b: (shared_head("rpn", a), shared_head("rpn", b)))
    x = jnp.ones((1, 3))
    params, state = model.init(jax.random.key(0), x, x)
    assert _shapes(params) == {"rpn": {"fc": {"W": (3, 2), "b": (2,)}}}
    (a, b), _, captured = model.apply(
        params, state, x, 2 * x, capture=["rpn/output", "rpn_1/output", "rpn_1/fc/output"]
    )
    assert captured["rpn/output"] is a and captured["rpn_1/output"] is b
    assert captured["rpn_1/fc/output"] is b


def test_two_different_layers_with_one_name_still_collide() -> None:
    @tp.layer_register()
    @tp.auto_reuse_variable_scope
    def collide_head(x):
        return tp.FullyConnected("fc", x, 2)

    @tp.layer_register()
    @tp.auto_reuse_variable_scope
    def collide_other(x):
        return tp.FullyConnected("fc", x, 2)

    model = tp.transform(lambda a: (collide_head("rpn", a), collide_other("rpn", a)))
    with pytest.raises(ValueError, match="collide_other 'rpn': the layer name 'rpn' is used twice"):
        model.init(jax.random.key(0), jnp.ones((1, 3)))


def test_capture_names_follow_tensorflow_for_reused_layers() -> None:
    """The first call keeps the name; later calls are `_1`, `_2` (TensorFlow's name scopes;
    the golden model_discrim_twice pins them against tensorpack)."""

    def net(x):
        outs = []
        for i in range(3):
            with tp.variable_scope("tower", reuse=i > 0):
                outs.append(tp.FullyConnected("fc", x * (i + 1), 2))
        return outs

    model = tp.transform(net)
    x = jnp.ones((1, 3))
    params, state = model.init(jax.random.key(0), x)
    names = ["tower/fc/output", "tower_1/fc/output", "tower_2/fc/output"]
    outs, _, captured = model.apply(params, state, x, capture=names)
    for name, out in zip(names, outs, strict=True):
        assert captured[name] is out


def test_regularize_cost_takes_tensorpacks_name() -> None:
    def net(x):
        y = tp.FullyConnected("fc", x, 2)
        return y, tp.regularize_cost(".*/W", tp.l2_regularizer(0.5), name="regularize_loss")

    model = tp.transform(net)
    x = jnp.ones((1, 3))
    params, state = model.init(jax.random.key(0), x)
    (_, wd), _, captured = model.apply(
        params, state, x, is_training=True, capture=["regularize_loss"]
    )
    assert captured["regularize_loss"] is wd
    (_, zero), _, captured = model.apply(params, state, x, capture=["empty_regularize_loss"])
    assert captured["empty_regularize_loss"] is zero
    with pytest.raises(ValueError, match="regularize_cost: name must be a non-empty string"):
        tp.regularize_cost(".*", tp.l2_regularizer(1.0), "", params=params)


def test_wrong_input_shape_is_not_blamed_on_the_params() -> None:
    model = tp.transform(lambda x: tp.Conv2D("conv0", x, 8, 3))
    params, state = model.init(jax.random.key(0), jnp.ones((2, 8, 8, 1)))
    expected = (
        r"Conv2D 'conv0': the input differs from the one init saw: init had \[2, 8, 8, 1\] "
        r"float32, apply got \[4, 8, 8, 3\] float32; so variable 'conv0/W' in params has shape "
        r"\[3, 3, 1, 8\], but the layer needs \[3, 3, 3, 8\]. Is it another channel count, or "
        "NCHW instead of NHWC"
    )
    with pytest.raises(ValueError, match=expected):
        model.apply(params, state, jnp.ones((4, 8, 8, 3)))
    with pytest.raises(ValueError, match=r"apply got \[2, 1, 8, 8\]"):
        model.apply(params, state, jnp.ones((2, 1, 8, 8)))
    # another batch size is no different input; params of another model still are blamed
    other = tp.transform(lambda x: tp.Conv2D("conv0", x, 8, 3))
    other.init(jax.random.key(0), jnp.ones((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="made by init of this same model, on inputs of this"):
        other.apply(params, state, jnp.ones((2, 8, 8, 3)))


def test_float64_numpy_input_makes_float32_variables_without_warnings() -> None:
    """NumPy's uint8 / 16.0 is float64; without jax_enable_x64 it computes in float32, and
    its variables are float32 too (pytest turns JAX's truncation warning into an error)."""
    import numpy as np

    images = np.zeros((2, 8, 8, 1), np.uint8) / 16.0
    model = tp.transform(lambda x: tp.FullyConnected("fc", tp.Conv2D("conv0", x, 4, 3), 2))
    params, _ = model.init(jax.random.key(0), images)
    assert {str(v.dtype) for v in jax.tree.leaves(params)} == {"float32"}


def test_numpy_bools_are_accepted_for_the_training_flag() -> None:
    import flax.linen as nn
    import numpy as np

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            with tp.linen.layers(self, train=train):
                return tp.BatchNorm("bn", x)

    x = jnp.arange(6.0).reshape(2, 3)
    variables = Net().init(jax.random.key(0), x, np.bool_(False))
    _, updates = Net().apply(variables, x, np.bool_(True), mutable=["batch_stats"])
    assert updates["batch_stats"]
    model = tp.transform(lambda x: tp.BatchNorm("bn", x))
    params, state = model.init(jax.random.key(0), x, is_training=np.bool_(True))
    _, new_state = model.apply(params, state, x, is_training=np.bool_(True))
    assert not np.allclose(new_state["bn"]["mean"]["EMA"], state["bn"]["mean"]["EMA"])


def test_init_traces_once_per_shape_and_takes_non_array_arguments() -> None:
    """init compiles one program per model, mode, shapes and non-array arguments: a second
    init with the same ones runs the program again without running the model function; an
    integer, a string and an unhashable argument reach the model as they are."""
    calls: list[tuple] = []

    class Options:  # unhashable: no init cache, compiled for that call only
        __hash__ = None  # type: ignore[assignment]

        def __init__(self, units: int) -> None:
            self.units = units

    def net(x, units, act="relu", options=None):
        calls.append((x.shape, units, act))
        units = options.units if options is not None else units
        return tp.FullyConnected("fc", x, units, activation=getattr(jax.nn, act))

    model = tp.transform(net)
    x = jnp.ones((2, 4))
    p1, _ = model.init(jax.random.key(0), x, 3)
    p2, _ = model.init(jax.random.key(0), x, 3)
    assert len(calls) == 1
    np.testing.assert_array_equal(p1["fc"]["W"], p2["fc"]["W"])
    model.init(jax.random.key(0), jnp.ones((5, 4)), 3, act="tanh")  # another shape
    assert len(calls) == 2 and calls[-1] == ((5, 4), 3, "tanh")
    p3, _ = model.init(jax.random.key(0), x, 3, options=Options(7))
    p4, _ = model.init(jax.random.key(0), x, 3, options=Options(7))
    assert len(calls) == 4 and p3["fc"]["W"].shape == p4["fc"]["W"].shape == (4, 7)
