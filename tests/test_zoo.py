"""tp.zoo beyond the tensorpack goldens: preprocessing, layout conversion, BatchNorm folding,
and `tpflax classify`."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpflax as tp
from tpflax import cli
from tpflax.zoo.classify import load_image


def _random_weights(model_fn, x, seed=0):
    """init, then BN statistics and gammas randomized so folding has something to fold."""
    model = tp.transform(model_fn)
    params, state = model.init(jax.random.key(seed), x)
    rng = np.random.RandomState(seed)
    flat = tp.checkpoint.flatten(params, state)
    for name, v in flat.items():
        if name.endswith(("variance/EMA", "gamma")):
            flat[name] = jnp.asarray(rng.uniform(0.5, 1.5, v.shape), v.dtype)
        elif name.endswith(("mean/EMA", "beta")):
            flat[name] = jnp.asarray(rng.randn(*v.shape) * 0.2, v.dtype)
    return model, *tp.checkpoint.restore(flat, params, state)[:2]


def test_image_preprocess_is_tensorpacks() -> None:
    bgr = jnp.array([[[0.0, 127.5, 255.0]]])
    got = tp.zoo.image_preprocess(bgr)
    mean = np.array([0.406, 0.456, 0.485]) * 255
    std = np.array([0.225, 0.224, 0.229]) * 255
    np.testing.assert_allclose(got[0, 0], (np.array([0.0, 127.5, 255.0]) - mean) / std, rtol=1e-6)
    rgb = tp.zoo.image_preprocess(bgr[..., ::-1], bgr=False)
    np.testing.assert_allclose(rgb[..., ::-1], got, rtol=1e-6)


@pytest.mark.parametrize(
    ("builder", "src", "dst"),
    [
        pytest.param(
            lambda f: tp.zoo.vgg16("none", data_format=f),
            "NCHW",
            "NHWC",
            marks=pytest.mark.slow,  # the VGG16-NHWC golden covers this in make test
            id="vgg16",
        ),
        pytest.param(
            lambda f: tp.zoo.alexnet(data_format=f),
            "NHWC",
            "NCHW",
            marks=pytest.mark.slow,  # make test-slow (time budget); docs/zoo.md's block converts
            id="alexnet",
        ),
    ],
)
def test_convert_layout_gives_the_same_logits(builder, src, dst) -> None:
    """Spatial maps larger than 1x1 before the flatten, so the row order really matters."""
    size = 64 if src == "NCHW" else 99
    x = jnp.asarray(np.random.RandomState(0).uniform(0, 255, (1, size, size, 3)), jnp.float32)
    model_src, params, state = _random_weights(builder(src), x)
    want, _ = jax.jit(model_src.apply)(params, state, x)
    flat = tp.checkpoint.flatten(params, state)
    model_fn = builder(dst)
    converted = tp.zoo.convert_layout(flat, model_fn, x, src=src, dst=dst)
    model = tp.transform(model_fn)
    p2, s2, _ = tp.checkpoint.restore(converted, params, state)
    apply = jax.jit(model.apply)
    got, _ = apply(p2, s2, x)
    np.testing.assert_allclose(got, want, atol=2e-5 * float(jnp.max(jnp.abs(want))))
    unconverted, _ = apply(params, state, x)  # without conversion: wrong
    assert float(jnp.max(jnp.abs(unconverted - want))) > 1e-3 * float(jnp.max(jnp.abs(want)))


@pytest.mark.parametrize(
    "arch",
    [
        # make test-slow: the same folding rules as ResNet18-preact (time budget)
        pytest.param("ResNet18", marks=pytest.mark.slow),
        pytest.param("ShuffleNetV2-0.5x", marks=pytest.mark.slow),
        pytest.param("VGG16-BN", marks=pytest.mark.slow),
        # make test-slow too (time budget): test_fold_batchnorm_on_a_small_model is fast
        pytest.param("ResNet18-preact", marks=pytest.mark.slow),
    ],
)
def test_fold_batchnorm_same_logits(arch) -> None:
    model_fn = tp.zoo.get(arch, data_format="NHWC")
    x = jnp.asarray(np.random.RandomState(1).uniform(0, 255, (2, 32, 32, 3)), jnp.float32)
    model, params, state = _random_weights(model_fn, x)
    want, _ = jax.jit(model.apply)(params, state, x)
    folded = tp.zoo.fold_batchnorm(model_fn if arch != "ResNet18" else model, params, state)
    got = folded(x)
    np.testing.assert_allclose(got, want, atol=1e-5 * float(jnp.max(jnp.abs(want))))
    n_bn = sum(1 for n in tp.checkpoint.flatten(state) if n.endswith("mean/EMA"))
    left = sum(1 for n in tp.checkpoint.flatten(folded.state) if n.endswith("mean/EMA"))
    assert len(folded.folded) == n_bn - left > 0
    if arch == "ResNet18-preact":
        assert left > 0  # pre-activation BNs follow a sum, not a layer: they stay


def _png(path, color, size=(300, 200)):
    from PIL import Image

    Image.new("RGB", size, color).save(path)


def test_load_image_resizes_crops_and_makes_bgr(tmp_path) -> None:
    _png(tmp_path / "red.png", (255, 10, 0))
    image = load_image(str(tmp_path / "red.png"))
    assert image.shape == (224, 224, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image[100, 100], [0, 10, 255], atol=1)
    with pytest.raises(FileNotFoundError, match="no such image"):
        load_image(str(tmp_path / "missing.png"))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot decode the image"):
        load_image(str(tmp_path / "bad.png"))


@pytest.mark.slow  # make test-slow: the 5-minute budget of make test (2 cores)
def test_classify_command(tmp_path, capsys) -> None:
    arch = "ShuffleNetV2-0.5x"
    model_fn = tp.zoo.get(arch, data_format="NHWC")
    images = []
    for i, color in enumerate([(200, 30, 30), (20, 180, 90)]):
        _png(tmp_path / f"{i}.png", color)
        images.append(str(tmp_path / f"{i}.png"))
    batch = jnp.asarray(np.stack([load_image(p) for p in images]))
    model, params, state = _random_weights(model_fn, batch, seed=2)
    tp.checkpoint.save_npz(str(tmp_path / f"{arch}.npz"), params, state)
    labels = tmp_path / "synset_words.txt"
    labels.write_text("".join(f"n{i:08d} class {i}, other name\n" for i in range(1000)))
    code = cli.main(
        [
            "classify",
            "--arch",
            arch,
            "--weights",
            str(tmp_path / f"{arch}.npz"),
            "--labels",
            str(labels),
            "--json",
            *images,
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    prob = np.asarray(jax.nn.softmax(jax.jit(model.apply)(params, state, batch)[0], axis=-1))
    for entry, p in zip(result, prob, strict=True):
        want = np.argsort(-p)[:5]
        assert [c for c, _, _ in entry["top"]] == want.tolist()
        np.testing.assert_allclose([q for _, q, _ in entry["top"]], p[want], rtol=1e-4)
        assert entry["top"][0][2] == f"class {want[0]}, other name"
    code = cli.main(
        ["classify", "--arch", arch, "--weights", str(tmp_path / f"{arch}.npz"), images[0]]
    )
    out = capsys.readouterr().out
    assert code == 0 and out.startswith(images[0]) and "%" in out


def test_classify_bad_input(tmp_path, capsys) -> None:
    code = cli.main(["classify", "--arch", "ResNet9000", "--weights", "x.npz", "a.png"])
    assert code == 2 and "unknown architecture 'ResNet9000'" in capsys.readouterr().err


def test_count_macs_takes_a_function_or_a_transformed_model() -> None:
    fn = tp.zoo.get("ShuffleNetV2-0.5x", data_format="NHWC")
    by_fn = tp.zoo.count_macs(fn, (1, 224, 224, 3))
    assert tp.zoo.count_macs(tp.transform(fn), (1, 224, 224, 3)) == by_fn > 0


def test_fold_batchnorm_on_a_small_model() -> None:
    """The folded-BatchNorm interceptor on every foldable kind (Conv2D with BNReLU,
    FullyConnected + BatchNorm, ShuffleNet's DepthConv + BatchNorm) and an unfoldable
    pre-activation BatchNorm: the same outputs as the unfolded model."""

    def net(x):
        l = tp.Conv2D("conv0", x, 4, 3, use_bias=False, activation=tp.BNReLU)
        l = tp.zoo.DepthConv("dconv", l, 8, 3, data_format="NHWC")
        l = tp.BatchNorm("dconv_bn", l)
        l = tp.BatchNorm("preact", jax.nn.relu(l))
        l = tp.FullyConnected("fc", l, 5, use_bias=False)
        return tp.BatchNorm("fc_bn", l)

    model = tp.transform(net)
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 3))
    params, state = model.init(jax.random.key(0), x)
    state = jax.tree.map(lambda v: v + 0.3, state)  # non-trivial statistics
    want, _ = model.apply(params, state, x)
    folded = tp.zoo.fold_batchnorm(net, params, state)
    assert folded.folded == ["conv0/bn", "dconv_bn", "fc_bn"]
    np.testing.assert_allclose(folded(x), want, rtol=1e-5, atol=1e-5)
