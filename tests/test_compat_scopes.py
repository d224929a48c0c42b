"""tpflax.compat.tf's scopes against real TensorFlow: the golden compat_scopes_train
(tools/golden/generate.py) runs here as the same code, only `tf` imported from tpflax."""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from golden_replay import check_fixture, fixtures

import tpflax as tp
from tpflax.compat import tf

tf1 = tf.compat.v1


@pytest.fixture(autouse=True)
def tensorflow_broadcasting():
    """TensorFlow broadcasts ranks implicitly ([2, 3] * [3]); the suite's conftest makes JAX
    raise on that, which TF-style model code must not."""
    with jax.numpy_rank_promotion("allow"):
        yield


def model_compat_scopes(x):
    from tpflax.compat.tensorpack import FullyConnected, under_name_scope

    def doubled_kernels(getter, name, *args, **kwargs):
        v = getter(name, *args, **kwargs)
        return v * 2.0 if name.endswith("/W") else v

    with tf1.variable_scope("block"):
        w = tf1.get_variable("w", [3], initializer=tf1.constant_initializer(0.5))
        h = tf.identity(x * w, name="proj")
        with tf1.name_scope("viz"):
            twice = tf.identity(h * 2.0, name="twice")
    with tf1.variable_scope("block", reuse=True):
        again = tf.identity(x * tf1.get_variable("w") + 1.0, name="proj")
    with tf1.variable_scope("auto", reuse=tf1.AUTO_REUSE):
        a = tf1.get_variable("a", [3])
        b = tf1.get_variable("a", [3])
    with tf1.variable_scope("getter", custom_getter=doubled_kernels):
        fc = FullyConnected("fc", h, 2)
    with tf1.variable_scope("outer") as outer:
        tf1.get_variable("c", [3], trainable=False)
    with tf1.variable_scope(outer, reuse=True):
        d = tf.identity(tf1.get_variable("c") * a, name="reenter")

    @under_name_scope()
    def viz(t):
        return tf.identity(t * 3.0, name="scaled")

    return [twice, again + a + b, fc, d, viz(h) + viz(twice)]


(SCOPES,) = fixtures("compat_scopes_train.npz")


def test_scopes_names_and_custom_getter_match_tensorflow() -> None:
    """Variable names, trainable split, outputs, gradients through the custom getter, and
    the tensors fetched by TF name (block/viz/twice, block_1/proj, outer_1/reenter)."""
    check_fixture(SCOPES, model_compat_scopes)


def test_compat_v1_is_the_module_itself() -> None:
    assert tf.compat.v1 is tf


def test_get_variable_default_initializer_is_glorot_uniform() -> None:
    def net(x):
        return tf.get_variable("k", [30, 50]), tf.get_variable("n", [4], dtype=jnp.int32)

    params, _ = tp.transform(net).init(jax.random.key(0), jnp.ones(1))
    limit = (6.0 / (30 + 50)) ** 0.5  # TensorFlow's glorot_uniform bound for [30, 50]
    k = params["k"]
    assert float(jnp.abs(k).max()) <= limit and float(jnp.abs(k).max()) > 0.9 * limit
    assert params["n"].dtype == jnp.int32 and not params["n"].any()


def test_assign_writes_a_non_trainable_variable_to_new_state() -> None:
    """BEGAN's kt: a non-trainable variable updated inside the model."""

    def net(x):
        kt = tf.get_variable("kt", dtype=jnp.float32, initializer=0.0, trainable=False)
        update = tf.assign(kt, jnp.clip(kt + x.mean(), 0.0, 1.0), name="update_k")
        tf.assign_add(tf.get_variable("count", [], trainable=False, initializer=1.0), 1.0)
        return x * kt, update

    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), jnp.ones(2))
    assert params == {} and float(state["kt"]) == 0.0
    (y, update), new_state, cap = model.apply(
        params, state, jnp.full(2, 0.25), capture=["update_k"]
    )
    assert float(y.sum()) == 0.0 and float(update) == 0.25 and cap["update_k"] is update
    assert float(new_state["kt"]) == 0.25 and float(new_state["count"]) == 2.0


def test_no_gradient_flows_back_through_an_assignment() -> None:
    """TF 2.21 (graph mode, resource variables): tf.gradients(tf.assign_add(v, w * 2) * 5, w)
    is [None], measured; what the assignment returned feeds the loss, its value does not.
    BEGAN's d_loss = L_pos - update_kt * L_neg depends on the generator through L_neg only."""

    def net(x):
        w = tf.get_variable("w", initializer=3.0)
        v = tf.get_variable("v", initializer=1.0, trainable=False)
        return tf.assign_add(v, w * x) * 5.0 + w

    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), jnp.float32(2.0))
    grads = jax.grad(lambda p: model.apply(p, state, jnp.float32(2.0))[0])(params)
    assert float(grads["w"]) == 1.0  # from "+ w" only


def test_scope_errors_name_the_call() -> None:
    def trainable_assign(x):
        return tf.assign(tf.get_variable("w", [2]), x)

    with pytest.raises(ValueError, match=r"tf.assign: 'w' is trainable"):
        tp.transform(trainable_assign).init(jax.random.key(0), jnp.ones(2))
    with pytest.raises(TypeError, match=r"tf.assign: ref must be a variable"):
        tp.transform(lambda x: tf.assign(x * 2, x)).init(jax.random.key(0), jnp.ones(2))
    with pytest.raises(NotImplementedError, match=r"tf.variable_scope: partitioner="):
        with_part = tp.transform(lambda x: tf.variable_scope("s", partitioner=abs).__enter__())
        with_part.init(jax.random.key(0), jnp.ones(2))
    with pytest.raises(TypeError, match=r"tf.variable_scope: regularizer must be a function"):
        with_reg = tp.transform(lambda x: tf.variable_scope("s", regularizer=0.1).__enter__())
        with_reg.init(jax.random.key(0), jnp.ones(2))
    with pytest.raises(ValueError, match=r"tf.get_variable\('v'\): needs shape="):
        tp.transform(lambda x: tf.get_variable("v")).init(jax.random.key(0), jnp.ones(2))
    with pytest.raises(ValueError, match=r"'w' does not exist, but the scope has reuse=True"):
        with_reuse = tp.transform(lambda x: _reuse_missing())
        with_reuse.init(jax.random.key(0), jnp.ones(2))


def _reuse_missing():
    with tf.variable_scope(tf.get_variable_scope(), reuse=True):
        return tf.get_variable("w", [2])


def test_default_name_and_name_scope_follow_tensorflow() -> None:
    """Measured in TF 2.21 (tools/golden): default_name scopes are dflt, dflt_1 for variables
    and tensors; a name_scope inside a variable scope names tensors, not variables; a name
    ending in '/' re-enters that exact scope."""

    def net(x):
        with tf.variable_scope(None, default_name="dflt"):
            a = tf.identity(x, name="a") * tf.get_variable("va", [1])
        with tf.variable_scope(None, default_name="dflt"):
            b = tf.identity(x, name="b") * tf.get_variable("vb", [1])
        with tf.variable_scope("vs"):
            with tf.name_scope("ns") as ns:
                assert ns == "vs/ns/"
                n = tf.identity(x, name="n") * tf.get_variable("vn", [1])
            with tf.name_scope("ns/"):
                m = tf.identity(x, name="m")
        return a, b, n, m

    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), jnp.ones(1))
    assert sorted(tp.checkpoint.flatten(params)) == ["dflt/va", "dflt_1/vb", "vs/vn"]
    names = ["dflt/a", "dflt_1/b", "vs/ns/n", "ns/m"]
    _, _, captured = model.apply(params, state, jnp.ones(1), capture=names)
    assert sorted(captured) == sorted(names)


def test_tower_context_and_tfv1() -> None:
    from tpflax.compat.tensorpack import get_current_tower_context, tfv1

    assert tfv1 is tf

    def net(x):
        ctx = get_current_tower_context()
        return x * (2.0 if ctx.is_training and ctx.is_main_training_tower else 1.0)

    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), jnp.ones(1))
    assert float(model.apply(params, state, jnp.ones(1), is_training=True)[0][0]) == 2.0
    assert float(model.apply(params, state, jnp.ones(1))[0][0]) == 1.0


def model_compat_summaries(x):
    from tpflax.compat.tensorpack import FullyConnected, add_moving_summary

    logits = FullyConnected("fc", x, 3)
    cost = tf.reduce_mean(tf.square(logits), name="cost")
    wrong = tf.reduce_mean(tf.cast(tf.greater(logits, 0.0), tf.float32), name="train_error")
    add_moving_summary(cost, wrong)
    return [cost, wrong]


(SUMMARIES,) = fixtures("compat_summaries_train.npz")


def test_add_moving_summary_matches_tensorpack() -> None:
    """EMA/<name>/biased and .../local_step after one step as tensorpack's MOVING_SUMMARY_OPS
    leave them; its EMA/<name> (which tpflax derives, a nested tree cannot hold it beside
    EMA/<name>/...) is the recorded summary."""
    averages = {f"EMA/{n}" for n in ("cost", "train_error")}
    fx = copy.copy(SUMMARIES)
    fx.data = {k: v for k, v in SUMMARIES.data.items() if k.split("/", 1)[-1] not in averages}
    check_fixture(fx, model_compat_summaries)
    model = tp.transform(model_compat_summaries)
    x = jnp.asarray(fx.data["input"])
    params, state = model.init(jax.random.key(0), x, is_training=True)
    params, state, _ = tp.checkpoint.restore(fx.prefixed("var/"), params, state)
    _, _, summaries = model.apply(params, state, x, is_training=True, capture=["summary:*"])
    for name in averages:
        want = SUMMARIES.data[f"state/{name}"]
        got = summaries[f"summary:scalar/{name[4:]}-summary"]
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_summaries_are_captured_together() -> None:
    def net(x):
        tf.summary.scalar("lr", x.mean())
        tf.summary.image("viz", jnp.zeros((5, 4, 4, 3)), max_outputs=2)
        tf.summary.histogram("act", x)
        cost = tf.identity(x.sum(), name="cost")
        add_moving_summary(cost)
        return cost

    from tpflax.compat.tensorpack import add_moving_summary

    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), jnp.ones(3), is_training=True)
    assert sorted(tp.checkpoint.flatten(state)) == [
        "EMA/cost/biased",
        "EMA/cost/local_step",
    ]
    # as tensorpack's inference tower: no moving averages (tp.train's init adds them)
    assert model.init(jax.random.key(0), jnp.ones(3))[1] == {}
    cost, _, summaries = model.apply(
        params, state, jnp.ones(3), is_training=True, capture=["summary:*"]
    )
    assert sorted(summaries) == [
        "summary:histogram/act",
        "summary:image/viz",
        "summary:scalar/cost-summary",
        "summary:scalar/lr",
    ]
    assert summaries["summary:image/viz"].shape == (2, 4, 4, 3)
    assert float(summaries["summary:scalar/cost-summary"]) == float(cost)  # debiased, step 1
    _, _, none = model.apply(params, state, jnp.ones(3), capture=["summary:scalar/cost*"])
    assert none == {}  # inference: tensorpack's moving summaries exist in training only
    with pytest.raises(TypeError, match="add_moving_summary: each tensor needs a TensorFlow name"):
        unnamed = tp.transform(lambda x: add_moving_summary(x.sum()))
        unnamed.init(jax.random.key(0), jnp.ones(2), is_training=True)


def model_compat_extras(x):
    from tpflax.compat.tensorpack.tfutils import symbolic_functions as symbf

    from tpflax.compat.tensorpack import (
        BatchNorm,
        Conv2D,
        FullyConnected,
        add_activation_summary,
        add_param_summary,
        l2_regularizer,
        remap_variables,
    )

    def binarize(v):
        name = v.op.name
        if "conv0" in name or not name.endswith("W"):
            return v
        return tf.sign(v) * tf.reduce_mean(tf.abs(v))

    x = tf1.placeholder_with_default(x, [2, 6, 6, 3], name="image")
    with remap_variables(binarize):
        h = Conv2D("conv0", x, 4, 3, activation=tf.nn.relu)
        h = Conv2D("conv1", h, 4, 3)
    h = BatchNorm("bn", h)
    shape = h.get_shape().as_list()
    h = tf.reshape(h, [-1, shape[1] * shape[2] * shape[3]])
    with tf1.variable_scope("head", regularizer=l2_regularizer(1e-2)):
        h = FullyConnected("fc", h, 5, activation=tf.nn.relu)
        w = tf1.get_variable("w", [5, 3])
        b = tf1.get_variable(
            "b", [3], initializer=tf1.zeros_initializer(), regularizer=lambda v: tf.reduce_sum(v)
        )
        logits = tf.identity(tf.matmul(h, w) + b, name="logits")
    add_activation_summary(logits)
    add_param_summary((".*/W", ["histogram", "rms"]), ("bn/.*", ["mean", "sparsity"]))
    conv_l2 = tf.add_n([tf.nn.l2_loss(v) for v in tf1.trainable_variables("conv")])
    reg = tf1.losses.get_regularization_loss()
    with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
        cost = tf.reduce_mean(tf.square(logits), name="cost")
    (clipped, _), norm = tf.clip_by_global_norm([logits, h], 1.0)
    rows = tf.map_fn(lambda r: tf.reduce_sum(r * r), tf1.check_numerics(clipped, "clipped"))
    err = symbf.rms(logits - 0.5, name="err_rms")
    return [cost + 1e-3 * conv_l2 + reg, logits, rows * norm, err * symbf.rms(h)]


(EXTRAS,) = fixtures("compat_extras_train.npz")


def test_tfutils_helpers_collections_and_summaries_match_tensorflow() -> None:
    """remap_variables (DoReFa's v.op.name test), a regularizer scope over tensorpack layers
    and get_variable (with its own regularizer), tf.trainable_variables(scope),
    get_regularization_loss, get_shape().as_list(), and add_param_summary /
    add_activation_summary: outputs, gradients, BatchNorm's EMA, and every summary's tag and
    value against tensorpack's."""
    check_fixture(EXTRAS, model_compat_extras)
