"""tp.train.fit(logdir=...): TensorBoard event files and tensorpack's stats.json, holding the
model's metrics and summaries (read back by protobuf here, by TensorFlow under make test-tf)."""

from __future__ import annotations

import glob
import io
import json
import pathlib
import struct
import subprocess

import google_crc32c
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from PIL import Image

import tpflax as tp
from tpflax.compat import tf
from tpflax.compat.tensorpack import add_moving_summary

GOLDEN_PYTHON = pathlib.Path(__file__).parents[1] / ".venv-golden" / "bin" / "python"


def net(x, y):
    logits = tp.FullyConnected("fc", x, 3)
    cost = tf.identity(optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), "cost")
    add_moving_summary(cost)
    tf.summary.image("viz", jnp.ones((4, 2, 2, 3)) * 0.5, max_outputs=2)
    tf.summary.histogram("logits", logits)
    return cost


def _train(logdir: pathlib.Path, steps: int = 4) -> list[dict]:
    model = tp.transform(net)
    x, y = jnp.arange(20.0).reshape(4, 5) / 20.0, jnp.array([0, 1, 2, 0])
    params, state = model.init(jax.random.key(0), x, y)
    trainer = tp.train.Trainer(model, optax.sgd(0.5))
    ts = trainer.init(params, state, x, y, rng=jax.random.key(1))
    _, history = tp.train.fit(
        trainer, ts, lambda step: (x, y), steps, logdir=str(logdir), log_every=2, progress=False
    )
    return history


def _event_class():
    """TensorFlow's Event/Summary messages (the fields written), built from a descriptor so the
    file is decoded by protobuf itself."""
    f = descriptor_pb2.FileDescriptorProto(name="event_test.proto", package="t")
    T = descriptor_pb2.FieldDescriptorProto
    msg = f.message_type.add(name="Image")
    for n, (name, typ) in enumerate(
        [
            ("height", T.TYPE_INT32),
            ("width", T.TYPE_INT32),
            ("colorspace", T.TYPE_INT32),
            ("encoded_image_string", T.TYPE_BYTES),
        ],
        1,
    ):
        msg.field.add(name=name, number=n, type=typ, label=T.LABEL_OPTIONAL)
    msg = f.message_type.add(name="Histo")
    for n, name in enumerate(["min", "max", "num", "sum", "sum_squares"], 1):
        msg.field.add(name=name, number=n, type=T.TYPE_DOUBLE, label=T.LABEL_OPTIONAL)
    for n, name in ((6, "bucket_limit"), (7, "bucket")):
        msg.field.add(name=name, number=n, type=T.TYPE_DOUBLE, label=T.LABEL_REPEATED)
    msg = f.message_type.add(name="Value")
    msg.field.add(name="tag", number=1, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    msg.field.add(name="simple_value", number=2, type=T.TYPE_FLOAT, label=T.LABEL_OPTIONAL)
    for n, name, typ in ((4, "image", ".t.Image"), (5, "histo", ".t.Histo")):
        msg.field.add(name=name, number=n, type=T.TYPE_MESSAGE, type_name=typ, label=1)
    msg = f.message_type.add(name="Summary")
    msg.field.add(name="value", number=1, type=T.TYPE_MESSAGE, type_name=".t.Value", label=3)
    msg = f.message_type.add(name="Event")
    msg.field.add(name="wall_time", number=1, type=T.TYPE_DOUBLE, label=T.LABEL_OPTIONAL)
    msg.field.add(name="step", number=2, type=T.TYPE_INT64, label=T.LABEL_OPTIONAL)
    msg.field.add(name="file_version", number=3, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    msg.field.add(name="summary", number=5, type=T.TYPE_MESSAGE, type_name=".t.Summary", label=1)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("t.Event"))


def _masked(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _events(path: str) -> list:
    data, out, at = pathlib.Path(path).read_bytes(), [], 0
    Event = _event_class()
    while at < len(data):
        (length,) = struct.unpack_from("<Q", data, at)
        assert struct.unpack_from("<I", data, at + 8)[0] == _masked(data[at : at + 8])
        body = data[at + 12 : at + 12 + length]
        assert struct.unpack_from("<I", data, at + 12 + length)[0] == _masked(body)
        out.append(Event.FromString(body))
        at += 16 + length
    return out


def test_fit_writes_events_and_stats(tmp_path) -> None:
    history = _train(tmp_path)
    (path,) = glob.glob(str(tmp_path / "events.out.tfevents.*"))
    events = _events(path)
    assert events[0].file_version == "brain.Event:2"
    assert [e.step for e in events[1:]] == [2, 4]
    for event, logged in zip(events[1:], (history[1], history[3]), strict=True):
        values = {v.tag: v for v in event.summary.value}
        # tensorpack's monitors log add_moving_summary's average as 'cost' (no '-summary'),
        # in place of the step's raw cost
        assert "cost-summary" not in values
        assert values["cost"].simple_value == pytest.approx(logged["cost-summary"], rel=1e-6)
        image = Image.open(io.BytesIO(values["viz/image/1"].image.encoded_image_string))
        assert image.size == (2, 2) and np.asarray(image)[0, 0].tolist() == [128, 128, 128]
        assert "viz/image/2" not in values  # max_outputs=2
        assert values["logits"].histo.num == 12 and sum(values["logits"].histo.bucket) == 12
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert [s["global_step"] for s in stats] == [2, 4]
    assert "cost-summary" not in stats[1]
    assert stats[1]["cost"] == pytest.approx(history[3]["cost-summary"], rel=1e-6)


@pytest.mark.tensorflow
def test_tensorflow_reads_the_events(tmp_path) -> None:
    """TensorFlow's own reader (summary_iterator, in .venv-golden) checks the records' CRCs
    and decodes the Event protos."""
    if not GOLDEN_PYTHON.exists():
        pytest.skip(".venv-golden is absent (make golden creates it)")
    history = _train(tmp_path, steps=2)
    (path,) = glob.glob(str(tmp_path / "events.out.tfevents.*"))
    script = (
        "import sys, tensorflow as tf\n"
        "for e in tf.compat.v1.train.summary_iterator(sys.argv[1]):\n"
        "    for v in e.summary.value:\n"
        "        kind = v.WhichOneof('value')\n"
        "        print(e.step, v.tag, kind, v.simple_value if kind == 'simple_value' else '')\n"
    )
    out = subprocess.run(
        [str(GOLDEN_PYTHON), "-c", script, path], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    cost = next(r for r in rows if r[1] == "cost")
    assert cost[0] == "2"
    assert float(cost[3]) == pytest.approx(history[1]["cost-summary"], rel=1e-6)
    assert {r[1]: r[2] for r in rows}["viz/image/0"] == "image"
    assert {r[1]: r[2] for r in rows}["logits"] == "histo"
