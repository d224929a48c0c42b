"""The shape log prints by default, as tensorpack's does, whatever other libraries do to the
root logger; routed to the root logger on request; setLevel(WARNING) silences it (a
subprocess: logging is global)."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import logging, jax, jax.numpy as jnp, tpflax as tp
def build(name):
    # traced, not compiled (the log is written while tracing)
    model = tp.transform(lambda x: tp.Conv2D(name, x, 4, 3))
    jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, 5, 5, 1)))
build('conv0')
logging.basicConfig(level=logging.WARNING, format='ROOT %(name)s %(message)s')
build('conv1')
logger = logging.getLogger('tpflax')
logger.handlers.clear()
logger.propagate = True
build('conv2')
logger.setLevel(logging.WARNING)
build('conv3')
"""


def test_shape_log_defaults() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = [l for l in result.stderr.splitlines() if "conv" in l]
    assert lines == [
        "[tpflax] 'conv0': [1, 5, 5, 1] --> [1, 5, 5, 4]",
        "[tpflax] 'conv1': [1, 5, 5, 1] --> [1, 5, 5, 4]",
        "ROOT tpflax 'conv2': [1, 5, 5, 1] --> [1, 5, 5, 4]",
    ]


THREADS = """
import threading, jax, jax.numpy as jnp, tpflax as tp
def net(x):
    with tp.argscope(tp.Conv2D, kernel_size=3, activation=tp.BNReLU):
        return tp.LinearWrap(x).Conv2D('conv0', 4).Conv2D('conv1', 4).FullyConnected('fc', 3)()
model = tp.transform(net)
x = jnp.ones((2, 8, 8, 1))
outs = []
def work():
    for _ in range(3):
        outs.append(model.init(jax.random.key(0), x)[0]['fc']['W'].sum())
threads = [threading.Thread(target=work) for _ in range(16)]
[t.start() for t in threads]
[t.join() for t in threads]
assert len(outs) == 48 and len({float(o) for o in outs}) == 1
"""


@pytest.mark.slow  # make test-slow: the 5-minute budget of make test (2 cores)
def test_sixteen_threads_sharing_one_model_log_each_layer_once_whole() -> None:
    result = subprocess.run(
        [sys.executable, "-c", THREADS], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert sorted(l for l in result.stderr.splitlines() if l.startswith("[tpflax]")) == [
        "[tpflax] 'conv0': [2, 8, 8, 1] --> [2, 8, 8, 4]",
        "[tpflax] 'conv1': [2, 8, 8, 4] --> [2, 8, 8, 4]",
        "[tpflax] 'fc': [2, 8, 8, 4] --> [2, 3]",
    ]
