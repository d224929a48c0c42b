"""``from tpflax.compat import tf``: TensorFlow 1.x's model-building names for tpflax models.

``tf.compat.v1`` (and tensorpack's ``tfv1``) is this same module.
"""

from __future__ import annotations

import sys
import types

from tpflax.compat.tf import (
    _missing,
    distributions,
    image,
    layers,
    losses,
    math,
    nn,
    summary,
    train,
)
from tpflax.compat.tf._collections import *  # noqa: F403
from tpflax.compat.tf._collections import __all__ as _collection_names
from tpflax.compat.tf._graph_ops import *  # noqa: F403
from tpflax.compat.tf._graph_ops import __all__ as _graph_names
from tpflax.compat.tf._initializers import *  # noqa: F403
from tpflax.compat.tf._initializers import __all__ as _initializer_names
from tpflax.compat.tf._ops import *  # noqa: F403
from tpflax.compat.tf._ops import __all__ as _op_names
from tpflax.compat.tf._scopes import *  # noqa: F403
from tpflax.compat.tf._scopes import __all__ as _scope_names
from tpflax.compat.tf._tensor import TensorShape

compat = types.SimpleNamespace(v1=sys.modules[__name__])

__all__ = [
    "TensorShape",
    "compat",
    "distributions",
    "image",
    "layers",
    "losses",
    "math",
    "nn",
    "summary",
    "train",
    *_collection_names,
    *_graph_names,
    *_op_names,
    *_initializer_names,
    *_scope_names,
]


_missing.install(sys.modules[__name__], "tf")
for _sub in (distributions, image, layers, losses, math, nn, summary, train):
    _missing.install(_sub, "tf." + _sub.__name__.rsplit(".", 1)[-1])
