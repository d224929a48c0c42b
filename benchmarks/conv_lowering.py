"""`make bench`: tpflax's default convolution lowering vs plain XLA convolutions, side by side.

ResNet-50 (tp.zoo, NHWC, float32) at batch 8, 224x224: inference and a training step (SGD
with momentum, BatchNorm in training), each compiled twice, once under
``tp.conv_impl('auto')`` (1x1 convolutions, and 3x3 ones with few outputs, as matrix
products on CPU) and once under
``tp.conv_impl('xla')`` (and ``tp.conv_impl('onednn')``, every convolution on oneDNN, where
the native library is built), timed interleaved (medians), with the largest output difference;
then the tables behind conv_impl.py's choices (3x3 convolutions as patches, max pooling's
derivative from the taps, oneDNN per ResNet-50 convolution, BatchNorm in training on oneDNN
per input and in whole ResNet train steps), and every one of those layer shapes under 'auto'
against 'xla', forward and train pass (issue 22's "no slowdown anywhere"). Appends rows to
benchmarks/RESULTS.md: CPU, cores, versions, date.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import pathlib
import platform
import re
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from run import time_interleaved, timeit  # benchmarks/run.py: the same timers everywhere

import tpflax as tp

RESULTS = pathlib.Path(__file__).with_name("RESULTS.md")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")


def machine() -> str:
    """The RESULTS.md machine column: CPU model, the vector flags that matter to XLA and
    oneDNN, the core count, and XLA_FLAGS when set."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    isa = " ".join(fl for fl in ISA_FLAGS if fl in flags) or "flags unknown"
    xla = os.environ.get("XLA_FLAGS")
    return f"{cpu_model()} ({isa}), {os.cpu_count()} cores" + (f", XLA_FLAGS={xla}" if xla else "")


# The optimizer of every benchmarked training step (tensorpack's side uses the same).
TX = optax.sgd(0.1, momentum=0.9)


def train_step(train_forward):
    """The benchmarks' training step ``(params, state, opt_state, x, y) -> (params, state,
    opt_state, cost)``: mean softmax cross-entropy of ``train_forward(p, s, x) -> (logits,
    new state)``, gradients, and one ``TX`` update; BatchNorm state threaded."""

    def train(p, s, o, x, y):
        def loss(p):
            logits, new_s = train_forward(p, s, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_s

        (cost, new_s), g = jax.value_and_grad(loss, has_aux=True)(p)
        updates, o = TX.update(g, o, p)
        return optax.apply_updates(p, updates), new_s, o, cost

    return train


def matmul_peak(
    repeats: int, n: int = 4096, dtype: Any = jnp.float32, precision: str | None = None
) -> float:
    """FLOP/s of an ``n``x``n`` matmul under XLA (float32 by default, at JAX's default
    ``precision``), the median of ``repeats`` after a warm-up."""
    a = jnp.asarray(np.random.RandomState(0).randn(n, n), dtype)
    f = jax.jit(lambda a: jnp.matmul(a, a, precision=precision))
    jax.block_until_ready(f(a))
    return 2 * n**3 / statistics.median(timeit(lambda: f(a), repeats))


def build(impl: str, batch: int, size: int, depth: int = 50):
    model = tp.transform(tp.zoo.resnet(depth))
    x = jnp.asarray(np.random.RandomState(0).uniform(0, 255, (batch, size, size, 3)), jnp.float32)
    y = jnp.asarray(np.arange(batch) % 1000, jnp.int32)
    params, state = jax.jit(model.init)(jax.random.key(0), x)
    opt_state = TX.init(params)

    def infer(p, s, x):
        with tp.conv_impl(impl):
            return model.apply(p, s, x)[0]

    def train_forward(p, s, x):
        with tp.conv_impl(impl):
            return model.apply(p, s, x, is_training=True)

    infer_c = jax.jit(infer)
    train_c = jax.jit(train_step(train_forward))
    t0 = time.perf_counter()
    out = jax.block_until_ready(infer_c(params, state, x))
    compile_infer = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(train_c(params, state, opt_state, x, y))
    compile_train = time.perf_counter() - t0
    return {
        "infer": lambda: infer_c(params, state, x),
        "train": lambda: train_c(params, state, opt_state, x, y),
        "out": out,
        "compile": (compile_infer, compile_train),
    }


def conv3x3_components(rounds: int) -> dict[str, float]:
    """Forward, input gradient and filter gradient of one 3x3 convolution ([8, 56, 56, 64],
    64 filters, SAME) under XLA, medians in seconds: where a backward pass is slow, a
    custom VJP would pay; where it is not, tpflax keeps XLA's own gradient."""
    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.randn(8, 56, 56, 64), jnp.float32)
    w = jnp.asarray(rng.randn(3, 3, 64, 64) * 0.05, jnp.float32)

    def conv(x, w):
        return jax.lax.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    dy = conv(x, w)
    fns = {
        "forward": jax.jit(conv),
        "d input": jax.jit(lambda x, w, dy: jax.vjp(conv, x, w)[1](dy)[0]),
        "d filter": jax.jit(lambda x, w, dy: jax.vjp(conv, x, w)[1](dy)[1]),
    }
    args = {"forward": (x, w), "d input": (x, w, dy), "d filter": (x, w, dy)}
    for name, fn in fns.items():
        jax.block_until_ready(fn(*args[name]))
    runs = {name: functools.partial(fn, *args[name]) for name, fn in fns.items()}
    return {k: statistics.median(v) for k, v in time_interleaved(runs, rounds).items()}


# The measurements behind conv_impl's patches table: [N, H, W, C] with C filters, 3x3 SAME.
PATCHES_SHAPES = [
    (8, 7, 7, 512),
    (1, 7, 7, 512),
    (8, 7, 7, 256),
    (1, 14, 14, 512),
    (2, 14, 14, 256),
    (8, 14, 14, 256),
    (8, 7, 7, 128),
]


def patches_table(rounds: int) -> list[str]:
    """Forward and training-step (both gradients) time of a 3x3 convolution, XLA's
    convolution against the patches product (tpflax/_src/conv_impl.py), per shape."""
    from tpflax._src.conv_impl import patches_conv

    def xla(x, w):
        return jax.lax.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    def patches(x, w):
        return patches_conv(x, w, (1, 1), "SAME", "NHWC")

    rng = np.random.RandomState(0)
    lines = []
    for shape in PATCHES_SHAPES:
        x = jnp.asarray(rng.randn(*shape), jnp.float32)
        w = jnp.asarray(rng.randn(3, 3, shape[3], shape[3]) * 0.05, jnp.float32)
        got = {}
        for name, fn in (("xla", xla), ("patches", patches)):
            fwd = jax.jit(fn)
            step = jax.jit(jax.grad(lambda x, w, fn=fn: jnp.sum(fn(x, w) ** 2), argnums=(0, 1)))
            for f in (fwd, step):
                jax.block_until_ready(f(x, w))
            got[name] = [
                statistics.median(timeit(functools.partial(f, x, w), rounds)) for f in (fwd, step)
            ]
        positions = shape[0] * shape[1] * shape[2]
        lines.append(
            f"{list(shape)} ({positions} positions): forward xla {got['xla'][0] * 1e3:.1f} / "
            f"patches {got['patches'][0] * 1e3:.1f} ms, train xla {got['xla'][1] * 1e3:.1f} / "
            f"patches {got['patches'][1] * 1e3:.1f} ms"
        )
    return lines


# The measurements behind conv_impl's oneDNN table: ResNet-50's convolutions at batch 8
# ([N, H, W, C], kernel, stride, filters), and a transposed convolution ([N, H, W, C], kernel,
# stride, filters) as a decoder would use it.
ONEDNN_SHAPES = [
    ((8, 224, 224, 3), 7, 2, 64),
    ((8, 56, 56, 64), 1, 1, 64),
    ((8, 56, 56, 64), 3, 1, 64),
    ((8, 56, 56, 64), 1, 1, 256),
    ((8, 56, 56, 256), 1, 1, 64),
    ((8, 56, 56, 256), 1, 2, 512),
    ((8, 56, 56, 128), 3, 2, 128),
    ((8, 28, 28, 128), 3, 1, 128),
    ((8, 28, 28, 512), 1, 1, 128),
    ((8, 14, 14, 256), 3, 1, 256),
    ((8, 14, 14, 1024), 1, 1, 256),
    ((8, 7, 7, 512), 3, 1, 512),
    ((8, 7, 7, 2048), 1, 1, 512),
    ((1, 56, 56, 64), 3, 1, 64),
]
ONEDNN_TRANSPOSE_SHAPES = [((8, 28, 28, 128), 4, 2, 64), ((8, 14, 14, 256), 3, 2, 128)]


def onednn_table(rounds: int, shapes=None, transpose_shapes=None) -> list[str]:
    """Forward and training-step (both gradients) time per convolution, interleaved: the
    lowering 'auto' picks without oneDNN (XLA's convolution, a dot, or patches) against
    oneDNN; the table behind conv_impl.ONEDNN_CONV. Empty when oneDNN is unavailable."""
    from unittest import mock

    from tpflax._src import conv_impl, onednn
    from tpflax._src.conv import conv2d, conv2d_transpose

    if not onednn.available():
        return []
    rng = np.random.RandomState(0)
    lines = []
    cases = [(s, False) for s in (ONEDNN_SHAPES if shapes is None else shapes)]
    cases += [
        (s, True)
        for s in (ONEDNN_TRANSPOSE_SHAPES if transpose_shapes is None else transpose_shapes)
    ]
    routes = {"base": False, "all": True}
    for (shape, k, stride, filters), transpose in cases:
        x = jnp.asarray(rng.randn(*shape), jnp.float32)
        w_shape = (k, k, filters, shape[3]) if transpose else (k, k, shape[3], filters)
        w = jnp.asarray(rng.randn(*w_shape) * 0.05, jnp.float32)
        op = conv2d_transpose if transpose else conv2d

        def fn(x, w, op=op, stride=stride):
            return op(x, w, None, strides=(stride, stride), padding="SAME", data_format="NHWC")

        fns = {}
        for name, route in routes.items():
            fwd = jax.jit(fn)
            step = jax.jit(jax.grad(lambda x, w: jnp.sum(fn(x, w) ** 2), argnums=(0, 1)))
            table = {
                "ONEDNN_CONV": lambda *a, r=route: r,
                "ONEDNN_CONV_TRANSPOSE": lambda *a, r=route: r,
            }
            with mock.patch.multiple(conv_impl, **table), tp.conv_impl("auto"):
                for f in (fwd, step):
                    jax.block_until_ready(f(x, w))  # traced and compiled here
            fns[name] = (fwd, step)
        times: dict[tuple[str, int], list[float]] = {}
        for _ in range(rounds):
            for name in routes:
                for i, f in enumerate(fns[name]):
                    times.setdefault((name, i), []).extend(timeit(functools.partial(f, x, w), 1))
        med = {key: statistics.median(v) * 1e3 for key, v in times.items()}
        kind = "transpose " if transpose else ""
        base_f, base_t = med[("base", 0)], med[("base", 1)]
        lines.append(
            f"{kind}{list(shape)} {k}x{k}/{stride} -> {filters}: forward {base_f:.1f} / "
            f"oneDNN {med[('all', 0)]:.1f} ms ({base_f / med[('all', 0)]:.2f}x); train "
            f"{base_t:.1f} / oneDNN {med[('all', 1)]:.1f} ms ({base_t / med[('all', 1)]:.2f}x)"
        )
        print(lines[-1], flush=True)
    return lines


# BatchNorm (training) inputs: ResNet's [N, H, W, C] around conv_impl's threshold.
BATCH_NORM_SHAPES = [
    (8, 7, 7, 512),
    (8, 14, 14, 256),
    (8, 7, 7, 2048),
    (8, 28, 28, 128),
    (8, 14, 14, 1024),
    (8, 56, 56, 64),
    (8, 28, 28, 512),
    (8, 56, 56, 256),
    (8, 112, 112, 64),
]


def _batch_norm_on(threshold: int):
    """A context in which 'auto' runs BatchNorm in training on oneDNN from ``threshold``
    elements (conv_impl.ONEDNN_BATCH_NORM_MIN_ELEMENTS)."""
    from unittest import mock

    from tpflax._src import conv_impl

    return mock.patch.object(conv_impl, "ONEDNN_BATCH_NORM_MIN_ELEMENTS", threshold)


def onednn_batch_norm_table(rounds: int, shapes=None) -> list[str]:
    """Time of BatchNorm + ReLU in training, forward and backward (gradients of the input,
    gamma and beta; the EMA updated), per input shape, interleaved: XLA's path against
    oneDNN's (tpflax/_src/onednn_batch_norm.py); the table behind
    conv_impl.ONEDNN_BATCH_NORM_MIN_ELEMENTS. Empty when oneDNN is unavailable."""
    from tpflax._src import onednn

    if not onednn.available():
        return []
    model = tp.transform(lambda x: jax.nn.relu(tp.BatchNorm("bn", x)))
    lines = []
    for shape in BATCH_NORM_SHAPES if shapes is None else shapes:
        rng = np.random.RandomState(0)
        x = jnp.asarray(rng.randn(*shape) * 2 + 1, jnp.float32)
        cot = jnp.asarray(rng.randn(*shape), jnp.float32)
        params, state = model.init(jax.random.key(0), x)

        def loss(p, x, state=state, cot=cot):
            y, new_state = model.apply(p, state, x, is_training=True)
            return jnp.sum(y * cot), new_state

        fns = {}
        for name, threshold in (("xla", 1 << 62), ("onednn", 1)):
            step = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))
            with _batch_norm_on(threshold), tp.conv_impl("auto"):
                jax.block_until_ready(step(params, x))  # traced and compiled here
            fns[name] = functools.partial(step, params, x)
        times = time_interleaved(fns, rounds)
        med = {name: statistics.median(v) * 1e3 for name, v in times.items()}
        lines.append(
            f"{list(shape)} ({np.prod(shape):.1e}): XLA {med['xla']:.2f} / oneDNN "
            f"{med['onednn']:.2f} ms ({med['xla'] / med['onednn']:.2f}x)"
        )
        print(lines[-1], flush=True)
    return lines


def batch_norm_step(rounds: int, depth: int, batch: int, size: int) -> str:
    """The whole ResNet train step under 'auto' with BatchNorm on oneDNN where the table
    says and with every BatchNorm on XLA, compiled in one process, timed interleaved."""
    from tpflax._src import conv_impl, onednn

    if not onednn.available():
        return ""
    fns = {}
    for name, threshold in (
        ("oneDNN", conv_impl.ONEDNN_BATCH_NORM_MIN_ELEMENTS),
        ("XLA", 1 << 62),
    ):
        with _batch_norm_on(threshold):  # build traces and compiles inside
            fns[name] = build("auto", batch, size, depth)["train"]
    med = {name: statistics.median(v) for name, v in time_interleaved(fns, rounds).items()}
    line = (
        f"ResNet-{depth} train step, BatchNorm on oneDNN (auto) {med['oneDNN']:.3f} s / on XLA "
        f"{med['XLA']:.3f} s ({med['XLA'] / med['oneDNN']:.2f}x)"
    )
    print(line, flush=True)
    return line


# The measurements behind conv_impl's max-pool table: [N, H, W, C], window, stride, padding.
MAX_POOL_SHAPES = [
    ((8, 112, 112, 64), 3, 2, "SAME"),  # ResNet's stem pool (NHWC zoo layout)
    ((8, 113, 113, 64), 3, 2, "VALID"),  # the same after explicit padding (NCHW zoo layout)
    ((8, 224, 224, 64), 2, 2, "VALID"),  # VGG's first pool
    ((8, 28, 28, 512), 2, 2, "VALID"),
    ((32, 28, 28, 32), 2, 2, "VALID"),  # the demo's (tpflax/demo.py) first pool
    ((2, 14, 14, 16), 2, 2, "VALID"),  # a small one: the calls' fixed cost
    ((8, 28, 28, 256), 7, 1, "SAME"),  # 49 taps, the table's limit
    ((8, 56, 56, 64), 8, 8, "VALID"),  # 64 taps
    ((8, 14, 14, 512), 14, 14, "VALID"),  # 196 taps: a global max
]


def max_pool_table(rounds: int) -> list[str]:
    """Forward and gradient time of max pooling (a ReLU'd input, so windows hold ties): XLA's
    ``reduce_window`` and JAX's rule (select-and-scatter) against the value and derivative
    from the taps (tpflax/_src/max_pool.py), and those from oneDNN's kernel and first maxima
    where the library is loaded, per shape."""
    from tpflax._src import onednn
    from tpflax._src.max_pool import max_pool, reduce_window_max

    impls = {"xla": reduce_window_max, "taps": max_pool}
    if onednn.available():
        impls["oneDNN"] = functools.partial(max_pool, on_onednn=True)

    def forward(fn, dims, strides, padding):
        return jax.jit(lambda x, cot: fn(x, dims, strides, padding))

    def gradient(fn, dims, strides, padding):
        return jax.jit(lambda x, cot: jax.vjp(lambda x: fn(x, dims, strides, padding), x)[1](cot))

    rng = np.random.RandomState(0)
    lines = []
    for shape, k, s, padding in MAX_POOL_SHAPES:
        dims, strides = (1, k, k, 1), (1, s, s, 1)
        x = jnp.maximum(jnp.asarray(rng.randn(*shape), jnp.float32), 0)
        out = jax.eval_shape(functools.partial(reduce_window_max, x, dims, strides, padding))
        cot = jnp.asarray(rng.randn(*out.shape), jnp.float32)
        runs = {
            (pass_, name): functools.partial(build(fn, dims, strides, padding), x, cot)
            for pass_, build in (("forward", forward), ("gradient", gradient))
            for name, fn in impls.items()
        }
        for run in runs.values():
            jax.block_until_ready(run())
        got = {
            key: statistics.median(times)
            for key, times in time_interleaved(
                {key: lambda run=run: jax.block_until_ready(run()) for key, run in runs.items()},
                rounds,
            ).items()
        }
        lines.append(
            f"{list(shape)} {k}x{k}/{s} {padding} ({k * k} taps): "
            + ", ".join(
                f"{p} " + " / ".join(f"{name} {got[p, name] * 1e3:.2f}" for name in impls) + " ms"
                for p in ("forward", "gradient")
            )
        )
    return lines


def program_text(compiled: Any) -> str:
    """A compiled function's optimized HLO without the source metadata (op names, stack
    frames, file tables) that differs between two traces of the same computation."""
    text = re.sub(r", metadata=\{[^{}]*\}", "", compiled.as_text())
    tables = ("FileNames", "FunctionNames", "FileLocations", "StackFrames")
    return "\n\n".join(b for b in text.split("\n\n") if not b.startswith(tables))


def auto_vs_xla_table(rounds: int) -> tuple[list[str], list[str]]:
    """Issue 22's "no slowdown anywhere": every layer shape of this file (ResNet-50's
    convolutions, the transposed ones, BatchNorm + ReLU in training, the max pools) under
    ``tp.conv_impl('auto')`` against ``'xla'``, forward (not differentiated: inference) and a
    training pass (forward, BatchNorm's EMA update, and the gradients of the input and the
    parameters), through the ops the layers call; per pass, one call of each lowering per
    round in a rotating order. A pass where 'auto' was more than 5% slower is timed again over
    three times the rounds; returns the table's lines and the passes slower both times."""
    from tpflax._src.conv import conv2d, conv2d_transpose
    from tpflax._src.pool import max_pool

    rng = np.random.RandomState(0)
    cases = []  # (label, input shape, fn(x, params) -> (y, aux), params)
    for (shape, k, stride, filters), transpose in [(s, False) for s in ONEDNN_SHAPES] + [
        (s, True) for s in ONEDNN_TRANSPOSE_SHAPES
    ]:
        w_shape = (k, k, filters, shape[3]) if transpose else (k, k, shape[3], filters)
        op = conv2d_transpose if transpose else conv2d

        def conv(x, w, op=op, stride=stride):
            y = op(x, w, None, strides=(stride, stride), padding="SAME", data_format="NHWC")
            return y, ()

        kind = "transpose " if transpose else ""
        w = jnp.asarray(rng.randn(*w_shape) * 0.05, jnp.float32)
        cases.append((f"{kind}{list(shape)} {k}x{k}/{stride} -> {filters}", shape, conv, w))
    bn = tp.transform(lambda x: jax.nn.relu(tp.BatchNorm("bn", x)))
    for shape in BATCH_NORM_SHAPES:
        params, state = bn.init(jax.random.key(0), jnp.zeros(shape, jnp.float32))

        def norm(x, params, state=state):
            return bn.apply(params, state, x, is_training=True)  # and the EMA update

        cases.append((f"BatchNorm+ReLU {list(shape)}", shape, norm, params))
    for shape, k, s, padding in MAX_POOL_SHAPES:

        def pool(x, params, k=k, s=s, padding=padding):
            return max_pool(x, (k, k), (s, s), padding, "NHWC"), ()

        cases.append((f"max pool {list(shape)} {k}x{k}/{s} {padding}", shape, pool, ()))
    lines, slower = [], []
    for label, shape, fn, params in cases:
        x = jnp.asarray(np.maximum(rng.randn(*shape), -0.5), jnp.float32)
        out = jax.eval_shape(fn, x, params)[0]
        cot = jnp.asarray(rng.randn(*out.shape), jnp.float32)
        runs, programs = {}, {}
        for impl in ("auto", "xla"):

            def forward(x, params, impl=impl, fn=fn):
                with tp.conv_impl(impl):
                    return fn(x, params)

            def train(x, params, cot, impl=impl, fn=fn):
                with tp.conv_impl(impl):
                    y, vjp, aux = jax.vjp(fn, x, params, has_aux=True)
                    return y, aux, vjp(cot)

            for pass_, f, args in (
                ("forward", forward, (x, params)),
                ("train", train, (x, params, cot)),
            ):
                exe = jax.jit(f).lower(*args).compile()
                runs[impl, pass_] = functools.partial(exe, *args)  # run.timeit waits for it
                programs[impl, pass_] = program_text(exe)
        for run in runs.values():
            jax.block_until_ready(run())

        def medians(pass_: str, rounds: int, runs=runs) -> tuple[float, float]:
            """auto's and xla's median ms for one pass, timed apart from the other pass (a
            forward right after the other lowering's train pass ran from a colder cache, up
            to 1.25x slower on small pools)."""
            both = {impl: runs[impl, pass_] for impl in ("auto", "xla")}
            got = time_interleaved(both, rounds)
            return statistics.median(got["auto"]) * 1e3, statistics.median(got["xla"]) * 1e3

        cells = []
        for pass_ in ("forward", "train"):
            if programs["auto", pass_] == programs["xla", pass_]:
                # identical programs read 0.92-0.97x in one run: not timed, not a slowdown
                cells.append(f"{pass_}: the same program under both")
                continue
            a, x_ = medians(pass_, rounds)
            cell = f"{pass_} auto {a:.2f} / xla {x_:.2f} ms ({x_ / a:.2f}x)"
            if a > 1.05 * x_:  # timed again, three times as long, before it counts
                a, x_ = medians(pass_, 3 * rounds)
                cell += f", again {a:.2f} / {x_:.2f} ms ({x_ / a:.2f}x)"
                if a > 1.05 * x_:
                    slower.append(f"{label} {pass_}")
            cells.append(cell)
        lines.append(f"{label}: " + ", ".join(cells))
        print(lines[-1], flush=True)
    return lines, slower


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    from tpflax._src import onednn

    impls = ("auto", "xla", "onednn") if onednn.available() else ("auto", "xla")
    runs = {impl: build(impl, args.batch, args.size) for impl in impls}
    diff = float(jnp.max(jnp.abs(runs["auto"]["out"] - runs["xla"]["out"])))
    scale = float(jnp.max(jnp.abs(runs["xla"]["out"])))
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):  # interleaved: both see the same machine load
        for kind in ("infer", "train"):
            for impl in impls:
                times.setdefault((impl, kind), []).extend(timeit(runs[impl][kind], 1))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"ResNet-50 batch {args.batch} {args.size}x{args.size} float32 on {cpu_model()}, "
        f"{os.cpu_count()} cores; max |auto - xla| logit {diff:.1e} (scale {scale:.1f}); "
        f"{tp.conv_impl.active()}"
    )
    for kind in ("infer", "train"):
        a, x = med[("auto", kind)], med[("xla", kind)]
        line = f"{kind:5}: auto {a:.3f} s, xla {x:.3f} s, speed-up {x / a:.2f}x"
        if "onednn" in runs:
            o = med[("onednn", kind)]
            line += f"; onednn (every convolution) {o:.3f} s, {x / o:.2f}x"
        print(line)
    for impl in impls:
        ci, ct = runs[impl]["compile"]
        print(f"compile ({impl}): inference {ci:.1f} s, train step {ct:.1f} s")
    parts = conv3x3_components(args.rounds)
    print(
        "3x3 conv [8,56,56,64]x64 under XLA: "
        + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in parts.items())
    )
    table = patches_table(args.rounds)
    print("3x3 conv, XLA vs patches (the table in conv_impl.py):\n  " + "\n  ".join(table))
    pools = max_pool_table(args.rounds)
    print("max pooling gradient, XLA vs taps (the table in conv_impl.py):\n  " + "\n  ".join(pools))
    if onednn.available():
        print(f"today's lowering vs {onednn.describe()} (the table in conv_impl.py):")
    dnnl = onednn_table(args.rounds)
    if onednn.available():
        print("BatchNorm + ReLU in training, XLA vs oneDNN (the threshold in conv_impl.py):")
    norms = onednn_batch_norm_table(args.rounds)
    steps = [batch_norm_step(args.rounds, d, args.batch, args.size) for d in (18, 50)]
    print("every layer shape above, 'auto' against 'xla' (issue 22: no slowdown anywhere):")
    every, slower = auto_vs_xla_table(args.rounds)
    print("  'auto' more than 5% slower than 'xla', twice: " + (", ".join(slower) or "none"))
    if not args.no_record:
        row = (
            f"| {datetime.date.today()} | conv_lowering | ResNet-50 b{args.batch} "
            f"{args.size}px f32 | {machine()} | jax {jax.__version__}"
            f" | infer auto {med[('auto', 'infer')]:.3f} s / xla {med[('xla', 'infer')]:.3f} s"
            f" ({med[('xla', 'infer')] / med[('auto', 'infer')]:.2f}x); train auto "
            f"{med[('auto', 'train')]:.3f} s / xla {med[('xla', 'train')]:.3f} s "
            f"({med[('xla', 'train')] / med[('auto', 'train')]:.2f}x)"
            + (
                f"; onednn (every convolution) infer {med[('onednn', 'infer')]:.3f} s, train "
                f"{med[('onednn', 'train')]:.3f} s"
                if "onednn" in runs
                else ""
            )
            + f" | medians of {args.rounds}, interleaved |\n"
        )
        row += (
            f"| {datetime.date.today()} | conv3x3_components | [8,56,56,64] 3x3x64 SAME f32 | "
            f"{machine()} | jax {jax.__version__} | "
            + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in parts.items())
            + f" | medians of {args.rounds} |\n"
        )
        row += (
            f"| {datetime.date.today()} | conv3x3_patches | 3x3 SAME f32, C -> C filters | "
            f"{machine()} | jax {jax.__version__} | "
            + "; ".join(table)
            + f" | medians of {args.rounds} |\n"
        )
        row += (
            f"| {datetime.date.today()} | max_pool | ReLU'd f32 input, NHWC | "
            f"{machine()} | jax {jax.__version__} | "
            + "; ".join(pools)
            + f" | medians of {args.rounds} |\n"
        )
        if dnnl:
            row += (
                f"| {datetime.date.today()} | onednn_conv | ResNet-50's convolutions b8 f32 NHWC, "
                f"SAME | {machine()} | jax {jax.__version__}, {onednn.describe()} | "
                + "; ".join(dnnl)
                + f" | medians of {args.rounds}, interleaved; 'today' = auto without oneDNN |\n"
            )
        if norms:
            row += (
                f"| {datetime.date.today()} | onednn_batch_norm | BatchNorm+ReLU in training, "
                f"forward and backward, f32 NHWC | {machine()} | jax {jax.__version__}, "
                f"{onednn.describe()} | "
                + "; ".join(norms + steps)
                + f" | medians of {args.rounds}, interleaved |\n"
            )
        row += (
            f"| {datetime.date.today()} | auto_vs_xla | every layer shape above, f32 NHWC, forward "
            f"and train pass | {machine()} | jax {jax.__version__}, {tp.conv_impl.active()} | "
            + "; ".join(every)
            + f"; 'auto' > 5% slower twice: {', '.join(slower) or 'none'} | medians of "
            f"{args.rounds}, interleaved per pass |\n"
        )
        if not RESULTS.exists():
            RESULTS.write_text(
                "# Benchmark results\n\nOne row per run of `make bench` (appended by the "
                "benchmarks). Ratios measured side by side in one run are what to read; the "
                "machine is shared and noisy.\n\n"
                "| date | benchmark | workload | machine | versions | result | method |\n"
                "|---|---|---|---|---|---|---|\n"
            )
        with RESULTS.open("a") as f:
            f.write(row)


if __name__ == "__main__":
    main()
