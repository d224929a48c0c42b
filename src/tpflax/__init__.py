"""tpflax: tensorpack's symbolic layers as pure JAX functions.

>>> import tpflax as tp
>>> tp.Conv2D
<tpflax layer Conv2D>
"""

from tpflax import (
    checkpoint,
    linen,
    nnx,
    train,
    zoo,
)
from tpflax._src import host_memory
from tpflax._src.argscope import (
    argscope,
    enable_argscope_for_function,
    enable_argscope_for_module,
    get_arg_scope,
)
from tpflax._src.batch_norm import BatchNorm, BNReLU
from tpflax._src.batch_renorm import BatchRenorm
from tpflax._src.conv import Conv2D, Conv2DTranspose, Deconv2D
from tpflax._src.conv_impl import conv_impl
from tpflax._src.dropout import Dropout
from tpflax._src.fc import FullyConnected
from tpflax._src.frame import (
    auto_reuse_variable_scope,
    freeze_variables,
    get_variable,
    is_training,
    variable_scope,
)
from tpflax._src.intercept import Interceptor, LayerCall, VariableRequest, intercept
from tpflax._src.linear_wrap import LinearWrap
from tpflax._src.nonlin import Maxout, PReLU
from tpflax._src.norm import InstanceNorm, LayerNorm
from tpflax._src.pool import AvgPooling, FixedUnPooling, GlobalAvgPooling, MaxPooling
from tpflax._src.registry import Layer, get_registered_layer, layer_register
from tpflax._src.regularize import (
    l1_regularizer,
    l2_regularizer,
    regularize_cost,
    regularize_cost_from_collection,
)
from tpflax._src.shapes import ConcatWith
from tpflax._src.transform import Transformed, transform
from tpflax.foreign import module

host_memory.configure()  # XLA:CPU's large freed host buffers kept for reuse

__version__ = "0.1.0"

__all__ = [
    "AvgPooling",
    "BNReLU",
    "BatchNorm",
    "BatchRenorm",
    "ConcatWith",
    "Conv2D",
    "Conv2DTranspose",
    "Deconv2D",
    "Dropout",
    "FixedUnPooling",
    "FullyConnected",
    "GlobalAvgPooling",
    "InstanceNorm",
    "Interceptor",
    "Layer",
    "LayerCall",
    "LayerNorm",
    "LinearWrap",
    "MaxPooling",
    "Maxout",
    "PReLU",
    "Transformed",
    "VariableRequest",
    "argscope",
    "auto_reuse_variable_scope",
    "checkpoint",
    "conv_impl",
    "enable_argscope_for_function",
    "enable_argscope_for_module",
    "freeze_variables",
    "get_arg_scope",
    "get_registered_layer",
    "get_variable",
    "intercept",
    "is_training",
    "l1_regularizer",
    "l2_regularizer",
    "layer_register",
    "linen",
    "module",
    "nnx",
    "regularize_cost",
    "regularize_cost_from_collection",
    "train",
    "transform",
    "variable_scope",
    "zoo",
]
