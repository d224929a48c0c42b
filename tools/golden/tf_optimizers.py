"""Optimizer fixtures from real TensorFlow 2.21 (run by `make golden` in `.venv-golden`).

For each case, `tf.compat.v1.train.<Optimizer>(...).apply_gradients` (graph mode, TF's own
kernels: ApplyGradientDescent, ApplyMomentum, ApplyAdam, ApplyRMSProp, ApplyCenteredRMSProp,
ApplyAdagrad) runs STEPS steps on three float32 variables with a fixed, seeded sequence of
gradients fed through placeholders. Written to --out/<case>.npz:

    optimizer, kwargs, schedule   the constructor's name, its arguments (JSON), and the
                                  learning-rate schedule (JSON, or "null")
    gradprocs                     tensorpack's gradient processors wrapped around the
                                  optimizer by `apply_grad_processors` (JSON list of
                                  [kind, *arguments], or "null")
    accum_grad                    the niter of tensorpack's AccumGradOptimizer wrapped
                                  around all that (JSON int, or "null")
    var_names                     the variables' names ("dense/W", ...)
    init/<var>                    each variable's initial value
    grad/<step>/<var>             the gradient fed at step <step>
    lr/<step>                     the learning rate TF used at step <step> (schedules)
    after/<step>/<tf name>        every variable TF holds after step <step>: the variables,
                                  their slots under TF's names ("dense/W/Adam_1") and the
                                  optimizer's non-slot variables ("beta1_power")
    slot_names                    JSON {slot: {var: TF's variable name}} as get_slot names them

Nothing here comes from tpflax.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()
tf1 = tf.compat.v1

STEPS = 10
VARS = {"dense/W": (3, 4), "dense/b": (4,), "conv/W": (2, 2, 1, 3)}
# Gradients of very different sizes per variable, as a network has (Adam's and RMSProp's
# epsilon matters for the small ones).
SCALES = {"dense/W": 1.0, "dense/b": 1e-3, "conv/W": 30.0}

# case -> (optimizer, kwargs, schedule or None)
CASES: dict[str, tuple[str, dict, dict | None]] = {
    "sgd": ("GradientDescentOptimizer", {"learning_rate": 0.1}, None),
    "momentum": ("MomentumOptimizer", {"learning_rate": 0.1, "momentum": 0.9}, None),
    "momentum_nesterov": (
        "MomentumOptimizer",
        {"learning_rate": 0.05, "momentum": 0.8, "use_nesterov": True},
        None,
    ),
    "adam": ("AdamOptimizer", {}, None),
    "adam_dcgan": ("AdamOptimizer", {"learning_rate": 2e-4, "beta1": 0.5, "epsilon": 1e-3}, None),
    "adam_large_lr": (
        "AdamOptimizer",
        {"learning_rate": 0.1, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6},
        None,
    ),
    "rmsprop": ("RMSPropOptimizer", {"learning_rate": 0.01}, None),
    "rmsprop_momentum": (
        "RMSPropOptimizer",
        {"learning_rate": 0.01, "decay": 0.8, "momentum": 0.9, "epsilon": 1e-6},
        None,
    ),
    "rmsprop_centered": (
        "RMSPropOptimizer",
        {"learning_rate": 0.003, "momentum": 0.5, "epsilon": 1e-4, "centered": True},
        None,
    ),
    "adagrad": ("AdagradOptimizer", {"learning_rate": 0.1}, None),
    "adagrad_init": (
        "AdagradOptimizer",
        {"learning_rate": 0.05, "initial_accumulator_value": 1.0},
        None,
    ),
    # tf.train.exponential_decay(learning_rate, global_step, decay_steps, decay_rate,
    # staircase) as the learning rate, global_step incremented by apply_gradients.
    "adam_exponential_decay_staircase": (
        "AdamOptimizer",
        {"learning_rate": 0.01},
        {"learning_rate": 0.01, "decay_steps": 3, "decay_rate": 0.5, "staircase": True},
    ),
    "momentum_exponential_decay": (
        "MomentumOptimizer",
        {"learning_rate": 0.1, "momentum": 0.9},
        {"learning_rate": 0.1, "decay_steps": 4, "decay_rate": 0.7, "staircase": False},
    ),
    # tensorpack's gradient processors (optimizer.apply_grad_processors), as GRADPROCS
    "momentum_gradprocs": (
        "MomentumOptimizer",
        {"learning_rate": 0.1, "momentum": 0.9},
        None,
    ),
    "adam_gradprocs": ("AdamOptimizer", {"learning_rate": 0.01}, None),
    # name= names the slots (dense/W/D_RMSProp, _1, _2); use_locking changes nothing
    "rmsprop_centered_named": (
        "RMSPropOptimizer",
        {"learning_rate": 0.003, "momentum": 0.5, "centered": True, "name": "D_RMSProp"}
        | {"use_locking": True},
        None,
    ),
    # tensorpack's AccumGradOptimizer(opt, niter) around the optimizer, as ACCUM_GRAD
    "adam_accum_grad": ("AdamOptimizer", {"learning_rate": 0.01}, None),
    "momentum_accum_grad_decay": (
        "MomentumOptimizer",
        {"learning_rate": 0.1, "momentum": 0.9},
        {"learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5, "staircase": True},
    ),
}

# case -> AccumGradOptimizer's niter (tensorpack.tfutils.optimizer), outermost
ACCUM_GRAD = {"adam_accum_grad": 3, "momentum_accum_grad_decay": 4}

# case -> tensorpack gradient processors, in order: [kind, *arguments]
GRADPROCS = {
    # Momentum is linear in the gradient: every scale shows (Adam's normalization hides a
    # constant one)
    "momentum_gradprocs": [["ScaleGradient", [["dense/b", 100.0]]], ["GlobalNormClip", 5.0]],
    "adam_gradprocs": [
        ["ScaleGradient", [["dense/.*", 0.5], ["conv/W", 2.0]]],
        ["MapGradient", "clip_by_value", [-1.0, 1.0], "conv/.*"],
        ["MapGradient", "add_variable", [0.01], "dense/W"],
        ["GlobalNormClip", 3.0],
    ],
}


def tensorpack_gradprocs(spec):
    from tensorpack.tfutils import gradproc

    out = []
    for kind, *args in spec:
        if kind == "GlobalNormClip":
            out.append(gradproc.GlobalNormClip(args[0]))
        elif kind == "ScaleGradient":
            out.append(gradproc.ScaleGradient([tuple(p) for p in args[0]], verbose=False))
        elif args[0] == "clip_by_value":
            out.append(gradproc.MapGradient(_clip(*args[1]), args[2]))
        else:  # add_variable: func(grad, var)
            out.append(gradproc.MapGradient(_add_variable(*args[1]), args[2]))
    return out


def _clip(lo, hi):  # tensorpack counts func's arguments: closures, not default arguments
    return lambda g: tf.clip_by_value(g, lo, hi)


def _add_variable(k):
    return lambda g, v: g + k * v


# slots by optimizer, as get_slot names them
SLOTS = {
    "GradientDescentOptimizer": [],
    "MomentumOptimizer": ["momentum"],
    "AdamOptimizer": ["m", "v"],
    "RMSPropOptimizer": ["rms", "mg", "momentum"],
    "AdagradOptimizer": ["accumulator"],
}


def gradients(seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(STEPS):
        out.append(
            {
                name: (rng.randn(*shape) * SCALES[name]).astype("float32")
                for name, shape in VARS.items()
            }
        )
    return out


def run_case(name: str, optimizer: str, kwargs: dict, schedule: dict | None, seed: int) -> dict:
    tf1.reset_default_graph()
    rng = np.random.RandomState(1000 + seed)
    init = {n: rng.randn(*s).astype("float32") for n, s in VARS.items()}
    grads = gradients(seed)
    variables, feeds = {}, {}
    for n, s in VARS.items():
        scope, leaf = n.split("/")
        with tf1.variable_scope(scope):
            variables[n] = tf1.get_variable(leaf, initializer=init[n])
        feeds[n] = tf1.placeholder(tf.float32, s, name=f"grad_{scope}_{leaf}")
    global_step = tf1.train.get_or_create_global_step()
    kw = dict(kwargs)
    if schedule is not None:
        kw["learning_rate"] = tf1.train.exponential_decay(global_step=global_step, **schedule)
    opt = getattr(tf1.train, optimizer)(**kw)
    if name in GRADPROCS:
        from tensorpack.tfutils.optimizer import apply_grad_processors

        opt = apply_grad_processors(opt, tensorpack_gradprocs(GRADPROCS[name]))
    if name in ACCUM_GRAD:
        from tensorpack.tfutils.optimizer import AccumGradOptimizer

        opt = AccumGradOptimizer(opt, ACCUM_GRAD[name])
    lr_tensor = opt._call_if_callable(kw.get("learning_rate", 0.001))
    lr_tensor = tf.convert_to_tensor(lr_tensor, tf.float32)
    train_op = opt.apply_gradients(
        [(feeds[n], variables[n]) for n in VARS], global_step=global_step
    )
    slot_names = {
        slot: {n: opt.get_slot(v, slot).op.name for n, v in variables.items()}
        for slot in SLOTS[optimizer]
        if opt.get_slot(variables["dense/W"], slot) is not None
    }
    recorded = [v for v in tf1.global_variables() if v.op.name != "global_step"]
    out: dict[str, np.ndarray] = {
        "optimizer": np.array(optimizer),
        "kwargs": np.array(json.dumps(kwargs)),
        "schedule": np.array(json.dumps(schedule)),
        "var_names": np.array(list(VARS)),
        "slot_names": np.array(json.dumps(slot_names)),
        "gradprocs": np.array(json.dumps(GRADPROCS.get(name))),
        "accum_grad": np.array(json.dumps(ACCUM_GRAD.get(name))),
    }
    for n in VARS:
        out[f"init/{n}"] = init[n]
    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        for step in range(STEPS):
            for n in VARS:
                out[f"grad/{step}/{n}"] = grads[step][n]
            out[f"lr/{step}"] = np.float32(sess.run(lr_tensor))
            sess.run(train_op, {feeds[n]: grads[step][n] for n in VARS})
            values = sess.run({v.op.name: v for v in recorded})
            for k, v in values.items():
                out[f"after/{step}/{k}"] = np.asarray(v)
    print(name, sorted(values))
    return out


def signatures(out_dir: str) -> None:
    """--out/signatures.json: each optimizer's constructor parameters and defaults, as
    `inspect.signature` reads TF's `__init__` (the compatibility names keep them)."""
    import inspect

    out = {}
    for optimizer in SLOTS:
        parameters = inspect.signature(getattr(tf1.train, optimizer).__init__).parameters
        out[optimizer] = [
            [p.name, None if p.default is inspect.Parameter.empty else p.default]
            for p in parameters.values()
            if p.name != "self"
        ]
    with open(os.path.join(out_dir, "signatures.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/golden/tf_optimizers")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for seed, (name, (optimizer, kwargs, schedule)) in enumerate(CASES.items()):
        np.savez(
            os.path.join(args.out, f"{name}.npz"),
            **run_case(name, optimizer, kwargs, schedule, seed),
        )
    signatures(args.out)


if __name__ == "__main__":
    main()
