"""Tensorpack's ``SummaryGradient`` summaries from real tensorpack 0.11 on TF 2.21 (run by
`make golden` in `.venv-golden`, with TF_USE_LEGACY_KERAS=1).

A two-layer classifier (``fc0`` with ReLU, ``linear``) trains STEPS steps with tensorpack's
own trainer (``launch_train_with_config``, ``SimpleTrainer``, one step per epoch so
``MergeAllSummaries`` writes every step) and
``optimizer.apply_grad_processors(GradientDescentOptimizer(LR), [SummaryGradient(REGEX)])``.
Tensorpack's ``TFEventWriter`` writes the event file, which is read back here with
TensorFlow's ``summary_iterator`` (the ``Summary`` protocol buffers themselves), and its
``JSONWriter`` writes ``stats.json``. Written to --out/summary_gradient.npz:

    init/<var>                  the variables' initial values (by SmartInit)
    image/<step>, label/<step>  the batch of each step
    lr, regex, decay            the learning rate, SummaryGradient's regex, the EMA decay
    scalar_tags                 JSON: the scalar summary tags written (every step)
    histogram_tags              JSON: the histogram summary tags written
    scalar/<step>/<tag>         each scalar summary's value at global step <step> (1-based)
    histo/<step>/<tag>          [min, max, num, sum, sum_squares] of each histogram summary
    stats_json                  tensorpack's stats.json, as text
    final/<var>                 the variables after the last step

Nothing here comes from tpflax.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()
from tensorpack import (
    Callback,
    DataFromList,
    FullyConnected,
    ModelDesc,
    SimpleTrainer,
    TrainConfig,
    launch_train_with_config,
)
from tensorpack.tfutils import gradproc, optimizer
from tensorpack.tfutils.sessinit import SmartInit
from tensorpack.utils import logger

tf1 = tf.compat.v1
STEPS = 3
LR = 0.1
REGEX = "fc0/.*|linear/W"
DECAY = 0.95  # add_moving_summary's default, which SummaryGradient uses
SHAPE = (6, 5)


class Net(ModelDesc):
    def inputs(self):
        return [tf.TensorSpec(SHAPE, tf.float32, "x"), tf.TensorSpec((6,), tf.int32, "label")]

    def build_graph(self, x, label):
        h = FullyConnected("fc0", x, 4, activation=tf.nn.relu)
        logits = FullyConnected("linear", h, 3)
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(logits=logits, labels=label),
            name="cost",
        )

    def optimizer(self):
        opt = tf1.train.GradientDescentOptimizer(LR)
        return optimizer.apply_grad_processors(opt, [gradproc.SummaryGradient(REGEX)])


def initial_weights() -> dict[str, np.ndarray]:
    rng = np.random.RandomState(31)
    shapes = {"fc0/W": (5, 4), "fc0/b": (4,), "linear/W": (4, 3), "linear/b": (3,)}
    return {k: (rng.randn(*s) * 0.5).astype("float32") for k, s in shapes.items()}


def batches() -> list[list[np.ndarray]]:
    rng = np.random.RandomState(32)
    return [
        [rng.randn(*SHAPE).astype("float32"), rng.randint(0, 3, size=6).astype("int32")]
        for _ in range(STEPS)
    ]


class Final(Callback):
    """The variables after training."""

    def _after_train(self):
        variables = [v for v in tf1.global_variables() if v.op.name != "global_step"]
        self.values = self.trainer.sess.run({v.op.name: v for v in variables})


def read_events(logdir: str) -> tuple[dict, dict]:
    """``{step: {tag: value}}`` of the scalars and ``{step: {tag: [min, max, num, sum,
    sum_squares]}}`` of the histograms, from the event file's Summary protos."""
    (path,) = glob.glob(os.path.join(logdir, "events.out.tfevents.*"))
    scalars: dict[int, dict[str, float]] = {}
    histos: dict[int, dict[str, list[float]]] = {}
    for event in tf1.train.summary_iterator(path):
        for value in event.summary.value:
            if value.HasField("simple_value"):
                scalars.setdefault(event.step, {})[value.tag] = value.simple_value
            elif value.HasField("histo"):
                h = value.histo
                histos.setdefault(event.step, {})[value.tag] = [
                    h.min,
                    h.max,
                    h.num,
                    h.sum,
                    h.sum_squares,
                ]
    return scalars, histos


def summary_gradient(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    init, data = initial_weights(), batches()
    with tempfile.TemporaryDirectory() as logdir:
        logger.set_logger_dir(logdir, action="d")
        final = Final()
        config = TrainConfig(
            model=Net(),
            dataflow=DataFromList(data, shuffle=False),
            callbacks=[final],
            session_init=SmartInit(dict(init)),
            steps_per_epoch=1,
            max_epoch=STEPS,
        )
        launch_train_with_config(config, SimpleTrainer())
        scalars, histos = read_events(logdir)
        with open(os.path.join(logdir, "stats.json")) as f:
            stats_json = f.read()
        logger.set_logger_dir(tempfile.mkdtemp(), action="d")  # release the log file
    assert sorted(scalars) == list(range(1, STEPS + 1)), sorted(scalars)
    assert sorted(histos) == list(range(1, STEPS + 1)), sorted(histos)
    out: dict[str, np.ndarray] = {f"init/{k}": v for k, v in init.items()}
    for step, (x, label) in enumerate(data):
        out[f"image/{step}"], out[f"label/{step}"] = x, label
    out["lr"], out["regex"], out["decay"] = np.float32(LR), np.array(REGEX), np.float32(DECAY)
    out["scalar_tags"] = np.array(json.dumps(sorted(scalars[1])))
    out["histogram_tags"] = np.array(json.dumps(sorted(histos[1])))
    for step in scalars:
        for tag, value in scalars[step].items():
            out[f"scalar/{step}/{tag}"] = np.float32(value)
        for tag, stats in histos[step].items():
            out[f"histo/{step}/{tag}"] = np.array(stats, np.float64)
    out["stats_json"] = np.array(stats_json)
    out.update({f"final/{k}": np.asarray(v) for k, v in final.values.items()})
    np.savez(os.path.join(out_dir, "summary_gradient.npz"), **out)
    print("scalars:", json.dumps(scalars[1], indent=1))
    print("histograms:", sorted(histos[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    summary_gradient(parser.parse_args().out)


if __name__ == "__main__":
    main()
