"""Multiply-adds of a model, counted from its traced program (no compilation, no data)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import tpflax as tp


def _count(jaxpr: Any) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "conv_general_dilated":
            out = eqn.outvars[0].aval
            rhs = eqn.invars[1].aval
            dims = eqn.params["dimension_numbers"]
            kernel_spatial = [rhs.shape[i] for i in dims.rhs_spec[2:]]
            cin_per_group = rhs.shape[dims.rhs_spec[1]]
            total += int(np.prod(out.shape)) * int(np.prod(kernel_spatial)) * cin_per_group
        elif name == "dot_general":
            lhs, rhs = eqn.invars[0].aval, eqn.invars[1].aval
            (lc, _), _ = eqn.params["dimension_numbers"]
            k = int(np.prod([lhs.shape[i] for i in lc]))
            total += int(np.prod(eqn.outvars[0].aval.shape)) * k
            del rhs
        for sub in jax.core.subjaxprs(eqn) if hasattr(jax.core, "subjaxprs") else ():
            total += _count(sub)
        for value in eqn.params.values():
            inner = getattr(value, "jaxpr", None)
            if inner is not None and hasattr(inner, "eqns"):
                total += _count(inner)
    return total


def count_macs(model_fn: Callable[..., Any], shape: tuple[int, ...] = (1, 224, 224, 3)) -> int:
    """Multiply-adds of convolutions and matrix products for one forward pass (inference),
    the "FLOPs" of the ShuffleNet/ResNet papers and tensorpack's README. ``model_fn`` is a
    model function or a ``tp.transform``-ed model.

    Example:
        >>> import tpflax as tp
        >>> round(tp.zoo.count_macs(tp.zoo.resnet(50)) / 1e9, 2)
        4.09
    """
    model = model_fn if isinstance(model_fn, tp.Transformed) else tp.transform(model_fn)
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    params, state = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
    # Traced with XLA's own convolutions: a native kernel (tp.conv_impl('onednn')) is an
    # opaque call in the program, though it does the same multiply-adds.
    with tp.conv_impl("xla"):
        closed = jax.make_jaxpr(lambda p, s, x: model.apply(p, s, x)[0])(params, state, x)
    return _count(closed.jaxpr)
