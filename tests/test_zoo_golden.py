"""The model zoo against real tensorpack (tools/golden/zoo.py): every architecture's
variable names and shapes at 224x224, and its logits at a small resolution with weights
regenerated from the recorded seed, in both layouts (NCHW-trained weights run in NHWC through
tp.zoo.convert_layout and back).

A representative pair (architecture, layout) of each family runs in `make test`; every pair
runs in `make test-slow` (deep ResNets compile slowly on CPU).
"""

from __future__ import annotations

import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpflax as tp
from tpflax._src import onednn

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "tools" / "golden"))
import zoo_values

ZOO = pathlib.Path(__file__).parent / "golden" / "zoo"
NAMES = json.loads((ZOO / "names.json").read_text())
FAST = {
    ("ResNet18", "NHWC"),
    ("ResNet18", "NCHW"),
    ("ResNet50", "NCHW"),
    ("ResNet18-preact", "NHWC"),
    ("ShuffleNetV1-0.5x-g=8", "NHWC"),
    ("ShuffleNetV2-0.5x", "NCHW"),
}  # make test-slow (the 5-minute budget): Inception-BN, ResNet50-SE, ResNeXt50 and the
# aligned-padding R50 (grouped convolutions run in ShuffleNet's, SE's parts in ResNet50's),
# the VGG16s (their layers run in AlexNet's and the ResNets'; GroupNorm in the layer
# goldens), and AlexNet under 'auto' (it runs under 'onednn' below)


NO_ONEDNN = pytest.mark.skipif(
    not onednn.available(), reason="oneDNN extension not built or not on CPU"
)


# Under tp.conv_impl('onednn') in `make test`: both layouts, groups (ShuffleNet's split and
# depthwise convolutions), an 11x11/4 VALID stem (AlexNet); the other pairs in test-slow.
ONEDNN_FAST = {
    ("ResNet18", "NHWC"),
    ("ResNet18", "NCHW"),
    ("ShuffleNetV1-0.5x-g=8", "NHWC"),
    ("AlexNet", "NCHW"),
}


# Under tp.conv_impl('xla') (XLA's convolutions everywhere: the path of a CPU without the
# library and of other backends) in `make test`. With oneDNN on AVX-512, 'auto' runs 17 of
# ResNet18's 20 convolutions on oneDNN, as 'onednn' does, and its 3 small 1x1 ones as
# products, as in the other 'auto' pairs; so there ResNet18's 'auto' pairs move to test-slow.
XLA_FAST = {("ResNet18", "NHWC"), ("ResNet18", "NCHW")}


def _cases():
    """Every pair under the default lowering, again with every float32 convolution on oneDNN
    (tp.conv_impl('onednn')) where the library is built, and with XLA's lowerings."""
    for impl in ("auto", "onednn", "xla"):
        fast = {"auto": FAST, "onednn": ONEDNN_FAST, "xla": XLA_FAST}[impl]
        if impl == "auto" and onednn.available() and onednn.has_avx512():
            fast = fast - XLA_FAST
        for arch in sorted(NAMES):
            for fmt in ("NHWC", "NCHW"):
                marks = [] if (arch, fmt) in fast else [pytest.mark.slow]
                marks += [NO_ONEDNN] if impl == "onednn" else []
                yield pytest.param(arch, fmt, impl, marks=marks, id=f"{arch}-{fmt}-{impl}")


def test_every_architecture_is_in_the_zoo() -> None:
    assert sorted(NAMES) == sorted(tp.zoo.ARCHITECTURES)


def _build(arch: str, fmt: str):
    kwargs = {"aux_logits": True} if arch == "Inception-BN" else {}
    return tp.zoo.get(arch, data_format=fmt, **kwargs)


# The 101/152-layer variants repeat their 50-layer siblings' blocks (and Inception-BN compiles
# slowly): their names and shapes are checked in make test-slow (the 5-minute budget).
_DEEP = ("101", "152", "Inception")
NAME_CASES = [
    pytest.param(a, marks=pytest.mark.slow) if any(d in a for d in _DEEP) else a
    for a in sorted(NAMES)
]


@pytest.mark.parametrize("arch", NAME_CASES)
def test_names_and_shapes_at_224(arch) -> None:
    model = tp.transform(_build(arch, "NHWC"))
    x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
    params, state = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
    ours = {k: list(v.shape) for k, v in tp.checkpoint.flatten(params, state).items()}
    assert ours == NAMES[arch]


@pytest.mark.parametrize(("arch", "fmt", "impl"), list(_cases()))
def test_logits_match_tensorpack(arch, fmt, impl) -> None:
    with np.load(ZOO / f"{arch}.npz") as data:
        fixture = {k: data[k] for k in data.files}
    spec = json.loads(str(fixture["spec"]))
    image = jnp.asarray(zoo_values.image((2, spec["size"], spec["size"], 3), spec["seed"]))
    model_fn = _build(arch, fmt)
    model = tp.transform(model_fn)
    params, state = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), image)
    shapes = {k: v.shape for k, v in tp.checkpoint.flatten(params, state).items()}
    flat = zoo_values.fill(shapes, spec["seed"])  # the weights tensorpack ran, its layout
    flat = tp.zoo.convert_layout(flat, model_fn, image, src=spec["layout"], dst=fmt)
    params, state, _ = tp.checkpoint.restore(flat, params, state, strict=True)
    with tp.conv_impl(impl):
        outputs, _ = jax.jit(lambda p, s, x: model.apply(p, s, x))(params, state, image)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    for i, got in enumerate(outputs):
        want = fixture[f"logits_{i}"]
        scale = float(np.max(np.abs(want)))
        err = float(np.max(np.abs(np.asarray(got) - want)))
        assert err <= 1e-5 * scale, f"logits_{i}: max error {err:.3g} vs scale {scale:.3g}"
