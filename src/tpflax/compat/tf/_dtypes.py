"""TensorFlow's dtype names (``tf.float32``, ``tf.int64``, ...) as NumPy dtypes, so that
``x.dtype == tf.float32`` holds for JAX arrays. Ops given a 64-bit dtype compute in the 32-bit
one unless ``jax_enable_x64`` is on (TensorFlow keeps 64 bits)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

float16 = half = np.dtype("float16")
bfloat16 = np.dtype(jnp.bfloat16)
float32 = np.dtype("float32")
float64 = double = np.dtype("float64")
int8 = np.dtype("int8")
int16 = np.dtype("int16")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
uint8 = np.dtype("uint8")
uint16 = np.dtype("uint16")
uint32 = np.dtype("uint32")
uint64 = np.dtype("uint64")
bool = np.dtype("bool")
complex64 = np.dtype("complex64")

__all__ = [
    "bfloat16",
    "bool",
    "complex64",
    "double",
    "float16",
    "float32",
    "float64",
    "half",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
]
