"""TensorFlow's tensor methods on JAX arrays (tpflax.compat.tf._tensor), the graph-level names
(control_dependencies, Print, Variable, Session, ...), collections, and the error for a name
tpflax.compat lacks. Numbers through these paths are pinned by the golden
compat_extras_train (tests/test_compat_scopes.py); here: semantics and messages."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpflax as tp
from tpflax.compat import tf
from tpflax.compat.tensorpack import FullyConnected


@pytest.fixture(autouse=True)
def tensorflow_broadcasting():
    """TF-style code broadcasts ranks implicitly; the suite's conftest makes JAX raise."""
    with jax.numpy_rank_promotion("allow"):
        yield


def test_static_shape_idioms_work_under_jit() -> None:
    seen = {}

    def net(x):
        shape = x.get_shape().as_list()
        seen["list"] = shape
        seen["ndims"] = (x.shape.ndims, x.get_shape().rank, x.shape[1:].as_list())
        seen["elements"] = (x.shape.num_elements(), x.shape.is_fully_defined())
        x.set_shape([None, 3, None])
        return tf.reshape(x, [-1, shape[1] * shape[2]])

    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), jnp.ones((2, 3, 4)))
    y, _ = jax.jit(model.apply)(params, state, jnp.ones((2, 3, 4)))
    assert y.shape == (2, 12)
    assert seen == {"list": [2, 3, 4], "ndims": (3, 3, [3, 4]), "elements": (24, True)}


def test_shapes_stay_tuples_for_jax() -> None:
    x = jnp.zeros((2, 3))
    assert x.shape == (2, 3) and isinstance(x.shape, tuple) and repr(x.shape) == "(2, 3)"
    assert jax.tree.leaves(x.shape) == [2, 3]
    assert isinstance(x.shape[1:], tf.TensorShape) and x.shape[0] == 2
    assert jnp.zeros(x.shape).shape == (2, 3)
    assert tf.TensorShape([2, None]).is_compatible_with(x.shape)
    assert tf.TensorShape([2, None]).num_elements() is None
    with pytest.raises(ValueError, match=r"Shapes \[2, 3\] and \[3\] are incompatible"):
        x.shape.assert_is_compatible_with([3])


def test_set_shape_checks_and_cannot_change() -> None:
    with pytest.raises(ValueError, match=r"set_shape\(\[2, 4\]\): the tensor's shape is \[2, 3\]"):
        jnp.zeros((2, 3)).set_shape([2, 4])


def test_names_of_named_tensors_and_variables() -> None:
    seen = {}

    def net(x):
        with tf.variable_scope("blk"):
            w = tf.get_variable("w", [3])
            c = tf.get_variable("c", [3], trainable=False, initializer=tf.zeros_initializer())
        y = tf.identity(x * w, name="y")
        seen["names"] = (w.op.name, w.name, c.op.name, y.name, y.op.name)
        seen["unnamed"] = hasattr(x * 2.0, "name")
        seen["vars"] = [v.op.name for v in tf.trainable_variables()]
        seen["all"] = [v.op.name for v in tf.global_variables("blk/c")]
        c.assign_add(x[0])
        return y

    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), jnp.ones((2, 3)))
    _, new_state = jax.jit(model.apply)(params, state, jnp.full((2, 3), 2.0))
    assert seen["names"] == ("blk/w", "blk/w:0", "blk/c", "y:0", "y")
    assert seen["unnamed"] is False
    assert seen["vars"] == ["blk/w"] and seen["all"] == ["blk/c"]
    np.testing.assert_array_equal(new_state["blk"]["c"], [2.0, 2.0, 2.0])


def test_unnamed_tensor_name_says_why() -> None:
    def net(x):
        return (x * 2.0).op.name

    with pytest.raises(AttributeError, match=r"tensor.op: this tensor has no TensorFlow name"):
        tp.transform(net).init(jax.random.key(0), jnp.ones(2))


def test_custom_getter_sees_variable_names() -> None:
    seen = []

    def getter(next_getter, *args, **kwargs):
        v = next_getter(*args, **kwargs)
        seen.append(v.op.name)
        return v

    def net(x):
        with tf.variable_scope("g", custom_getter=getter):
            return FullyConnected("fc", x, 2)

    tp.transform(net).init(jax.random.key(0), jnp.ones((1, 3)))
    assert seen == ["g/fc/W", "g/fc/b"]


def test_graph_level_names() -> None:
    def net(x):
        with tf.control_dependencies([tf.no_op(), tf.group(x)]):
            y = tf.identity(x, name="y")
        return tf.Print(y, [y], "y = ")

    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), jnp.ones(2))
    out, _ = jax.jit(model.apply)(params, state, jnp.ones(2))
    np.testing.assert_array_equal(out, [1.0, 1.0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: tf.Variable(1.0), r"tf.Variable is not supported.*tf.get_variable"),
        (lambda: tf.Session(), r"tf.Session is not supported.*tp.transform"),
        (lambda: tf.get_default_graph(), r"tf.get_default_graph is not supported.*capture"),
        (lambda: tf.py_func(abs, [], tf.float32), r"tf.py_func.*jax.pure_callback"),
        (lambda: tf.add_to_collection("x", 1), r"tf.add_to_collection\('x'\) is not supported"),
    ],
)
def test_graph_only_names_raise_with_the_alternative(call, message) -> None:
    with pytest.raises(NotImplementedError, match=message):
        call()


def test_unknown_collection_raises() -> None:
    def net(x):
        return tf.get_collection("my_losses")

    with pytest.raises(NotImplementedError, match=r"tf.get_collection\('my_losses'\)"):
        tp.transform(net).init(jax.random.key(0), jnp.ones(2))


def test_missing_names_say_so() -> None:
    with pytest.raises(AttributeError, match=r"tf.contrib is not in tpflax.compat: tf.contrib"):
        _ = tf.contrib
    with pytest.raises(AttributeError, match=r"tf.nn.no_such_op is not in tpflax.compat \(the"):
        _ = tf.nn.no_such_op
    with pytest.raises(AttributeError, match=r"tf.nn.rnn_cell is not in tpflax.compat: recurrent"):
        _ = tf.nn.rnn_cell
    assert not hasattr(tf, "__wrapped__")


def test_tensorpack_module_paths_port_by_one_rule() -> None:
    """`tensorpack` -> `tpflax.compat.tensorpack` in every import model code writes."""
    import importlib

    import tpflax.compat.tensorpack as tpc

    for module, names in {
        "tfutils.summary": ["add_moving_summary", "add_param_summary", "add_activation_summary"],
        "tfutils.scope_utils": ["auto_reuse_variable_scope", "under_name_scope"],
        "tfutils.varreplace": ["remap_variables", "freeze_variables", "custom_getter_scope"],
        "tfutils.symbolic_functions": ["rms", "print_stat"],
        "tfutils.common": ["get_global_step_var", "get_tf_version_tuple"],
        "tfutils.tower": ["get_current_tower_context"],
        "tfutils.argscope": ["argscope", "enable_argscope_for_module"],
        "tfutils.gradproc": ["GlobalNormClip", "MapGradient", "SummaryGradient"],
        "tfutils.optimizer": ["apply_grad_processors"],
        "models": ["Conv2D", "BatchNorm", "regularize_cost", "l2_regularizer"],
        "models.regularize": ["regularize_cost", "regularize_cost_from_collection"],
        "utils.argtools": ["memoized", "memoized_method"],
    }.items():
        loaded = importlib.import_module(f"tpflax.compat.tensorpack.{module}")
        for name in names:
            assert getattr(loaded, name) is not None, f"{module}.{name}"
    # `from tensorpack import *` also gives these modules; tfutils.argscope is the function
    for name in ("summary", "optimizer", "gradproc", "varreplace", "tower", "logger"):
        assert name in tpc.__all__
    assert tpc.tfutils.argscope is tpc.argscope
    assert tpc.ModelDescBase is tpc.ModelDesc


def test_memoized_method_caches_per_instance() -> None:
    from tpflax.compat.tensorpack.utils.argtools import memoized_method

    class Desc:
        calls = 0

        @memoized_method
        def get_optimizer(self):
            Desc.calls += 1
            return object()

    a, b = Desc(), Desc()
    assert a.get_optimizer() is a.get_optimizer() and b.get_optimizer() is not a.get_optimizer()
    assert Desc.calls == 2


def test_logger_logs_and_refuses_a_log_dir(caplog) -> None:
    from tpflax.compat.tensorpack import logger

    with caplog.at_level("INFO", logger="tpflax"):
        logger.info("model built")
        logger.warn("careful")
    assert [r.getMessage() for r in caplog.records] == ["model built", "careful"]
    with pytest.raises(NotImplementedError, match=r"fit\(logdir=...\)"):
        logger.set_logger_dir("train_log")


def test_placeholder_with_default_and_tf_test() -> None:
    def net(x):
        return tf.placeholder_with_default(x, [None, 3], name="z")

    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), jnp.ones((2, 3)))
    _, _, captured = model.apply(params, state, jnp.ones((2, 3)), capture=["z"])
    assert captured["z"].shape == (2, 3)
    with pytest.raises(ValueError, match=r"placeholder_with_default\('z'\): the default's shape"):
        model.init(jax.random.key(0), jnp.ones((2, 4)))
    assert tf.test.is_gpu_available() == (jax.default_backend() == "gpu")


def test_symbolic_shapes_still_work() -> None:
    """jax.export's symbolic dimensions pass through TensorShape untouched."""
    (b,) = jax.export.symbolic_shape("b")
    model = tp.transform(lambda x: tp.Conv2D("conv", x, 4, 3))
    spec = jax.ShapeDtypeStruct((b, 8, 8, 3), jnp.float32)
    params, _ = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), spec)
    assert params["conv"]["W"].shape == (3, 3, 3, 4)
    assert jnp.zeros((2, 3)).shape.as_list() == [2, 3]


def test_distribution_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"Categorical\('cat'\): give logits or probs"):
        tf.distributions.Categorical(logits=[0.0, 1.0], probs=[0.5, 0.5], name="cat")
    with pytest.raises(ValueError, match=r"Categorical\('Categorical'\): logits/probs need"):
        tf.distributions.Categorical(logits=1.0)
    dist = tf.distributions.Categorical(logits=jnp.zeros((4, 3)))
    assert dist.event_size == 3 and dist.batch_shape == (4,)
    assert tf.distributions.Normal(jnp.zeros((2, 1)), jnp.ones(3)).batch_shape == (2, 3)


def test_control_dependencies_on_an_assignment_warns(caplog) -> None:
    """BEGAN reads kt inside control_dependencies([tf.assign(kt, ...)]): TensorFlow sees the
    new value, tpflax the old one; it says so, naming the variable."""

    def net(x):
        kt = tf.get_variable("kt", [], trainable=False, initializer=tf.zeros_initializer())
        update = tf.assign(kt, tf.clip_by_value(kt + 0.5, 0.0, 1.0))
        with tf.control_dependencies([update]):
            return tf.identity(kt * x, name="loss")

    with caplog.at_level("WARNING", logger="tpflax"):
        tp.transform(net).init(jax.random.key(0), jnp.ones(2))
    assert any(
        "a read of 'kt' inside the block sees its old value" in r.getMessage()
        for r in caplog.records
    )


def test_tensorpack_dataflow_says_it_is_not_model_code() -> None:
    with pytest.raises(ImportError, match=r"tensorpack.dataflow.dataset is not in tpflax.compat"):
        from tpflax.compat.tensorpack.dataflow import dataset  # noqa: F401
