"""Inference weights with BatchNorm folded into the layer before it."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import tpflax as tp
from tpflax._src import intercept
from tpflax._src.frame import current_frame
from tpflax._src.tree import lookup


def _producer(bn_scope: str, flat: Mapping[str, Any]) -> str | None:
    """The layer whose output this BatchNorm normalizes: ``conv1`` for ``conv1/bn`` (a layer
    with ``activation=BNReLU``), ``conv2`` for ``conv2_bn`` (tensorpack's examples)."""
    layer = bn_scope[:-3]
    if bn_scope.endswith(("/bn", "_bn")) and f"{layer}/W" in flat:
        return layer
    return None


def fold_params(
    params: Mapping[str, Any], state: Mapping[str, Any], epsilon: float = 1e-5
) -> tuple[dict, dict, list[str]]:
    """``(params, state, folded scopes)`` with every foldable BatchNorm merged into its layer:
    ``W * s`` and ``b * s + beta - mean * s``, ``s = gamma / sqrt(var + epsilon)``.

    A BatchNorm is foldable when it directly follows a layer with a kernel ``W`` whose output
    channels it normalizes (``Conv2D``, ``FullyConnected``, ShuffleNet's ``DepthConv``);
    others (pre-activation BNs) stay.
    """
    flat = {k: np.asarray(v) for k, v in tp.checkpoint.flatten(params, state).items()}
    folded = []
    for name in sorted(flat):
        if not name.endswith("/mean/EMA"):
            continue
        scope = name[: -len("/mean/EMA")]
        layer = _producer(scope, flat)
        if layer is None:
            continue
        W = flat[f"{layer}/W"]
        mean, var = flat[f"{scope}/mean/EMA"], flat[f"{scope}/variance/EMA"]
        c = mean.shape[0]
        gamma = flat.get(f"{scope}/gamma", np.ones(c, np.float32))
        beta = flat.get(f"{scope}/beta", np.zeros(c, np.float32))
        s = (gamma / np.sqrt(var.astype(np.float64) + epsilon)).astype(np.float64)
        if W.shape[-1] == c:
            W2 = W * s.reshape((1,) * (W.ndim - 1) + (c,))
        elif W.ndim == 4 and W.shape[2] * W.shape[3] == c:  # depthwise [k, k, cin, mult]
            W2 = W * s.reshape(1, 1, W.shape[2], W.shape[3])
        else:
            continue
        b = flat.get(f"{layer}/b", np.zeros(c, np.float32))
        flat[f"{layer}/W"] = W2.astype(W.dtype)
        flat[f"{layer}/b"] = (b * s + beta - mean * s).astype(W.dtype)
        for var_name in ("gamma", "beta", "mean/EMA", "variance/EMA"):
            flat.pop(f"{scope}/{var_name}", None)
        folded.append(scope)
    p, s_ = tp.checkpoint.unflatten(flat)
    return jax.tree.map(jnp.asarray, p), jax.tree.map(jnp.asarray, s_), folded


class FoldedBatchNorm(intercept.Interceptor):
    """Runs a model on the weights of :func:`fold_params`, in inference: a BatchNorm whose
    statistics were folded away passes its input through, and a layer built with
    ``use_bias=False`` uses the bias the folding gave it."""

    def layer(self, call: intercept.LayerCall, next: Callable[[intercept.LayerCall], Any]) -> Any:
        frame = current_frame(f"{call.layer} (folded BatchNorm)")
        if frame.mode != "apply":
            return next(call)
        if call.layer == "BatchNorm":
            training = call.kwargs.get("training")
            training = frame.is_training if training is None else bool(training)
            if (
                not training
                and lookup(frame.state, [*call.scope.split("/"), "mean", "EMA"]) is None
            ):
                return call.inputs
        elif call.kwargs.get("use_bias") is False and _held(frame.params, f"{call.scope}/b"):
            return next(call.replace(kwargs={**call.kwargs, "use_bias": True}))
        return next(call)


def _held(tree: Mapping[str, Any], name: str) -> bool:
    value = lookup(tree, name.split("/"))
    return value is not None and not isinstance(value, Mapping)


class Folded:
    """An inference-only model with BatchNorm folded away; call it on images.

    Attributes:
        params, state: the folded weights (``conv1/b`` appears where ``conv1/bn`` was).
        folded: the BatchNorm scopes that were folded.
    """

    def __init__(self, model_fn: Callable[..., Any], params: Mapping, state: Mapping) -> None:
        self.params, self.state, self.folded = fold_params(params, state)
        model = model_fn if isinstance(model_fn, tp.Transformed) else tp.transform(model_fn)

        def run(p: Any, s: Any, *inputs: Any) -> Any:
            with intercept.intercept(FoldedBatchNorm()):
                return model.apply(p, s, *inputs, is_training=False)[0]

        self._run = jax.jit(run)

    def __call__(self, *inputs: Any) -> Any:
        return self._run(self.params, self.state, *inputs)


def fold_batchnorm(model_fn: Callable[..., Any], params: Mapping, state: Mapping) -> Folded:
    """Folds every BatchNorm that directly follows a convolution or fully connected layer into
    it, for inference: the same logits (to float rounding, 1e-5 of their scale) with fewer
    operations.

    Args:
        model_fn: the model function (e.g. ``tp.zoo.resnet(50)``) or its ``tp.transform``.
        params, state: its trained weights.

    Returns:
        A jit-compiled callable ``folded(images) -> outputs`` holding the folded weights.

    Example:
        >>> import jax, jax.numpy as jnp, tpflax as tp
        >>> def net(x):
        ...     return tp.Conv2D('conv0', x, 4, 3, use_bias=False, activation=tp.BNReLU)
        >>> params, state = tp.transform(net).init(jax.random.key(0), jnp.ones((1, 8, 8, 3)))
        >>> folded = tp.zoo.fold_batchnorm(net, params, state)
        >>> folded.folded, sorted(folded.params['conv0'])
        (['conv0/bn'], ['W', 'b'])
    """
    return Folded(model_fn, copy.deepcopy(dict(params)), copy.deepcopy(dict(state)))
