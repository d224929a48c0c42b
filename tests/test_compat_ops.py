"""``tpflax.compat.tf``'s ops replayed against real TensorFlow's fixtures
(tools/golden/tf_ops.py, ``make golden-tf-ops``): each case's source runs once with
``tf = tf.compat.v1`` there and here with ``tf = tpflax.compat.tf``, eagerly and under
``jax.jit``. Outputs match to 1e-6 of the output's scale (float32 rounding of a few ops),
gradients of ``sum(out * cotangent)`` to 1e-5 of theirs, integers and booleans exactly, and
dtypes as TensorFlow's with 64-bit types narrowed to 32 bits (x64 off)."""

from __future__ import annotations

import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import GOLDEN_DIR

from tpflax.compat import tf

FIXTURES = GOLDEN_DIR / "tf_ops"


def load(name: str) -> dict[str, dict[str, Any]]:
    cases: dict[str, dict[str, Any]] = {}
    with np.load(FIXTURES / name, allow_pickle=False) as z:
        for key in z.files:
            cid, field = key.rsplit("/", 1)
            cases.setdefault(cid, {})[field] = z[key]
    for case in cases.values():
        case["spec"] = json.loads(str(case["spec"]))
    return cases


OPS = load("ops.npz")


def run(fn: Any, *inputs: Any) -> list[Any]:
    out = fn(*inputs)
    return list(out) if isinstance(out, list | tuple) else [out]


# Sums over many terms: their rounding scales with the terms, not with the result, which
# cancellation can make far smaller (reduce_mean_all: a mean of 0.0088 over 60 values of
# magnitude 0.9, where one summation order against another moves the result by 1.7e-8, 2e-6
# of it). Their outputs are compared on the scale of their input too.
SUMS = ("reduce_mean", "reduce_sum", "math_reduce_mean", "reduce_variance", "reduce_std")


def close(got: Any, want: np.ndarray, rel: float, what: str, floor: float = 1e-30) -> None:
    got = np.asarray(got)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, TF {want.shape}"
    assert got.dtype == jax.dtypes.canonicalize_dtype(want.dtype), (
        f"{what}: dtype {got.dtype}, TF {want.dtype}"
    )
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    scale = max(float(np.max(np.abs(want), initial=0.0)), floor)
    np.testing.assert_allclose(got, want, rtol=0, atol=rel * scale, err_msg=what)


def grads(fn: Any, inputs: list[jax.Array], case: dict[str, Any]) -> dict[int, jax.Array]:
    """d sum(out_k * cot_k) / d input, for the float inputs."""
    floats = [j for j, v in enumerate(inputs) if v.dtype == jnp.float32]
    cots = {k: case[f"cot{k}"] for k in range(case["spec"]["n_out"]) if f"cot{k}" in case}

    def loss(*fs: jax.Array) -> jax.Array:
        ins = list(inputs)
        for j, f in zip(floats, fs, strict=True):
            ins[j] = f
        outs = run(fn, *ins)
        return sum(jnp.sum(outs[k] * c) for k, c in cots.items())

    gs = jax.grad(loss, argnums=tuple(range(len(floats))))(*[inputs[j] for j in floats])
    return dict(zip(floats, gs, strict=True))


# Also run eagerly: the ops whose static path (NumPy shapes, literals) differs outside jit.
EAGER = ("reshape", "shape", "size", "rank", "constant", "range", "slice", "concat", "stack")


@pytest.mark.parametrize("cid", sorted(OPS))
def test_op_matches_tensorflow(cid: str) -> None:
    """Outputs and gradients under jit (one compilation per case: XLA's compile time is most
    of this test's), and eagerly for the ops with a static path."""
    case = OPS[cid]
    spec = case["spec"]
    fn = eval(spec["src"], {"tf": tf})  # the case's source, the same text TF ran
    inputs = [jnp.asarray(case[f"in{j}"]) for j in range(spec["n_in"])]

    @jax.jit
    def outputs_and_grads(*ins: jax.Array) -> Any:
        return run(fn, *ins), grads(fn, list(ins), case) if spec["grad"] else {}

    outs, gs = outputs_and_grads(*inputs)
    results = [("jit", outs)]
    if cid.startswith(EAGER):
        results.append(("eager", run(fn, *inputs)))
    floor = 1e-30
    if cid.startswith(SUMS) and inputs[0].dtype.kind == "f":
        floor = float(jnp.max(jnp.abs(inputs[0])))
    for mode, got in results:
        assert len(got) == spec["n_out"], f"{mode}: {len(got)} outputs, TF {spec['n_out']}"
        for k, o in enumerate(got):
            close(o, case[f"out{k}"], 1e-6, f"{cid} {mode} output {k}", floor)
    for j, g in gs.items():
        close(g, case[f"grad{j}"], 1e-5, f"{cid} gradient of input {j}")


def test_named_ops_are_captured_under_their_tensorflow_names() -> None:
    import tpflax as tp

    def model(x: jax.Array) -> jax.Array:
        a = tf.concat([x, x], 1, "viz")  # TF's positional name
        b = tf.nn.relu(a, name="viz")
        return tf.reduce_mean(b, axis=1, name="mean")

    m = tp.transform(model)
    x = jnp.arange(6.0).reshape(2, 3) - 2
    params, state = m.init(jax.random.key(0), x)
    out, _, cap = m.apply(params, state, x, capture=["viz", "viz_1", "mean"])
    np.testing.assert_array_equal(cap["viz"], np.concatenate([x, x], 1))
    np.testing.assert_array_equal(cap["viz_1"], np.maximum(np.concatenate([x, x], 1), 0))
    np.testing.assert_array_equal(cap["mean"], out)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda x: tf.where(x > 0), r"tf.where\(condition\) with one argument.*static shapes"),
        (lambda x: tf.boolean_mask(x, x > 0), r"tf.boolean_mask.*static shapes.*tf.where\(mask"),
        (lambda x: tf.unique(x), r"tf.unique.*static shapes.*size=N"),
        (
            lambda x: tf.image.non_max_suppression(x, x[:, 0], 3),
            r"tf.image.non_max_suppression.*static shapes",
        ),
        (lambda x: tf.sequence_mask(x[0]), r"tf.sequence_mask without maxlen.*maxlen="),
    ],
)
def test_data_dependent_ops_raise_naming_the_op_and_the_alternative(call: Any, match: str) -> None:
    with pytest.raises(NotImplementedError, match=match):
        call(jnp.ones((4, 4)))


def test_shapes_must_be_static_under_jit() -> None:
    @jax.jit
    def bad(x: jax.Array, n: jax.Array) -> jax.Array:
        return tf.reshape(x, [n, -1])

    with pytest.raises(TypeError, match=r"tf.reshape: needs a static value.*tf.shape"):
        bad(jnp.ones((2, 3)), jnp.asarray(2))
    with pytest.raises(ValueError, match=r"tf.pad: mode must be CONSTANT, REFLECT or SYMMETRIC"):
        tf.pad(jnp.ones(3), [[1, 1]], "EDGE")
    with pytest.raises(ValueError, match=r"tf.split: sizes \[1, 1\] do not add up"):
        tf.split(jnp.ones((3,)), [1, 1])
    with pytest.raises(ValueError, match="sparse_softmax_cross_entropy_with_logits: call with"):
        tf.nn.sparse_softmax_cross_entropy_with_logits(jnp.ones(3))


def test_dtypes_are_numpy_dtypes_narrowed_without_x64() -> None:
    x = jnp.ones((2, 3))
    assert x.dtype == tf.float32 and tf.compat.v1.float32 is tf.float32
    assert tf.cast(x, tf.int64).dtype == jnp.int32  # TF: int64; JAX without x64: int32
    assert tf.argmax(x, 1).dtype == jnp.int32
    assert isinstance(tf.shape(x), np.ndarray) and tf.shape(x).dtype == np.int32


def test_gradient_ops_say_what_to_write() -> None:
    with pytest.raises(NotImplementedError, match=r"tf.gradients.*jax.grad"):
        tf.gradients(jnp.ones(3), [jnp.ones(3)])
    bad = tf.custom_gradient(lambda x, y: (x * y, lambda dy: dy))
    with pytest.raises(ValueError, match="grad_fn gave 1 gradients for 2 inputs"):
        jax.grad(lambda x: bad(x, x))(1.0)


def test_python_scalars_keep_the_tensor_dtype() -> None:
    x = jnp.ones(3, jnp.bfloat16)
    assert tf.multiply(x, 0.5).dtype == jnp.bfloat16
    assert tf.maximum(x, 0.0).dtype == jnp.bfloat16
    assert tf.nn.leaky_relu(x).dtype == jnp.bfloat16


def test_static_values_for_shapes_under_jit() -> None:
    """tf.constant and tf.range are NumPy (static) values, tf.top_k a named tuple."""

    @jax.jit
    def f(x: jax.Array) -> Any:
        y = tf.pad(x, tf.constant([[1, 1], [0, 0]]))
        y = tf.reduce_sum(y, axis=tf.range(1, 2))
        return tf.reshape(y, tf.constant([2, -1])), tf.nn.top_k(x, 2).indices

    y, idx = f(jnp.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(y, [[0.0, 3.0], [12.0, 0.0]])
    np.testing.assert_array_equal(idx, [[2, 1], [2, 1]])


def test_control_flow_forms_tensorflow_fixtures_do_not_cover() -> None:
    # a bare tensor as loop_vars comes back bare (TF1 needs a list with maximum_iterations)
    assert int(tf.while_loop(lambda v: v < 10, lambda v: v * 2, jnp.asarray(1))) == 16
    ran = []
    out = tf.cond(False, lambda: ran.append("true") or 1.0, lambda: ran.append("false") or 2.0)
    assert (out, ran) == (2.0, ["false"])  # a static predicate runs one branch
