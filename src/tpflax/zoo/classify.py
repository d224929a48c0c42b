"""Classify images with a model-zoo file, as tensorpack's ``load-resnet.py`` / ``--eval`` do:
resize the shortest edge to 256 (bicubic), center-crop 224, BGR, the model's own
preprocessing, softmax, top-k."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import tpflax as tp
from tpflax.zoo import ARCHITECTURES, TRAINED_LAYOUT, convert_layout, get

# Where tensorpack's ILSVRCMeta keeps the class names it downloads (caffe_ilsvrc12.tar.gz).
_TENSORPACK_META = ("~/tensorpack_data/ilsvrc_metadata/synset_words.txt",)


def load_image(path: str, size: int = 224) -> np.ndarray:
    """``[size, size, 3]`` float32 BGR pixels: shortest edge resized to ``size / 0.875``
    (256 for 224) with bicubic interpolation, then the center crop (tensorpack's
    ``fbresnet_augmentor`` for evaluation; Pillow's bicubic differs from OpenCV's by a few
    grey levels)."""
    from PIL import Image  # imported on use: only classification needs it

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such image: {path}")
    try:
        with Image.open(path) as opened:
            im = opened.convert("RGB")
            short = int(size / 0.875)
            w, h = im.size
            scale = short / min(w, h)
            im = im.resize(
                (max(short, round(w * scale)), max(short, round(h * scale))),
                Image.Resampling.BICUBIC,
            )
            w, h = im.size
            left, top = (w - size) // 2, (h - size) // 2
            im = im.crop((left, top, left + size, top + size))
            rgb = np.asarray(im, dtype=np.float32)
    except OSError as e:
        raise ValueError(f"{path}: cannot decode the image ({e})") from None
    return rgb[:, :, ::-1].copy()


def load_labels(path: str | None) -> list[str] | None:
    """ImageNet class names, one per line (``synset_words.txt``: ``n01440764 tench, ...``),
    from ``path`` or tensorpack's download location; ``None`` if there is none."""
    candidates = [path] if path else [os.path.expanduser(p) for p in _TENSORPACK_META]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            with open(candidate, encoding="utf-8") as f:
                lines = [line.strip() for line in f if line.strip()]
            return [
                line.split(" ", 1)[1] if line[:1] == "n" and " " in line else line for line in lines
            ]
    if path:
        raise FileNotFoundError(f"no such labels file: {path}")
    return None


@dataclasses.dataclass
class Prediction:
    image: str
    top: list[tuple[int, float, str | None]]  # (class, probability, name)


def _mismatch(weights: str, arch: str, missing: list[str], unexpected: list[str]) -> str:
    def some(names: list[str]) -> str:
        shown = ", ".join(names[:3])
        return f"{len(names)} ({shown}{', ...' if len(names) > 3 else ''})"

    parts = []
    if missing:
        parts.append(f"missing from the file: {some(missing)}")
    if unexpected:
        parts.append(f"not in {arch}: {some(unexpected)}")
    return f"{weights} does not fit --arch {arch}: variables " + "; ".join(parts)


def classify(
    arch: str,
    weights: str,
    images: Sequence[str],
    top: int = 5,
    labels: list[str] | None = None,
    data_format: str = "NHWC",
) -> list[Prediction]:
    """Top-``top`` ImageNet classes of each image with a tensorpack model-zoo file.

    Args:
        arch: a ``tp.zoo.ARCHITECTURES`` name (``'ResNet50'``).
        weights: the ``.npz`` (or any file ``tp.checkpoint.load`` reads), restored strictly.
        images: image paths.
        data_format: the layout to run in; fully connected layers after a flatten are
            converted from the layout the file was trained in.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    model_fn = get(arch, data_format=data_format)
    model = tp.transform(model_fn)
    batch = jnp.asarray(np.stack([load_image(p) for p in images]))
    params, state = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), batch)
    flat = tp.checkpoint.load(weights)
    wanted = set(tp.checkpoint.flatten(params, state))
    model_vars = {n for n in flat if not tp.checkpoint.is_training_name(n)}
    if wanted != model_vars:
        raise ValueError(
            _mismatch(weights, arch, sorted(wanted - model_vars), sorted(model_vars - wanted))
        )
    flat = convert_layout(
        flat, model_fn, batch, src=TRAINED_LAYOUT.get(arch, "NCHW"), dst=data_format
    )
    params, state, _ = tp.checkpoint.restore(flat, params, state, strict=True)
    logits, _ = jax.jit(lambda p, s, x: model.apply(p, s, x))(params, state, batch)
    prob = np.asarray(jax.nn.softmax(logits, axis=-1))
    out = []
    for path, p in zip(images, prob, strict=True):
        best = np.argsort(-p)[:top]
        names: list[Any] = [labels[i] if labels and i < len(labels) else None for i in best]
        out.append(
            Prediction(path, [(int(i), float(p[i]), n) for i, n in zip(best, names, strict=True)])
        )
    return out
