"""The golden cases: one layer call each, as plain data both sides can read.

A case is replayed by `generate.py` in real tensorpack and, from the fixture it writes, by
`tests/test_golden_layers.py` through tpflax's public API. Encoded values:
activation names ("relu", "tanh", "BNReLU"), initializers {"constant": v}.
"""

from __future__ import annotations

from typing import Any


def case(cid: str, layer: str, shape: list[int], *args: Any, **kw: Any) -> dict[str, Any]:
    spec = {
        "id": cid,
        "layer": layer,
        "name": kw.pop("_name", "layer"),
        "args": list(args),
        "kwargs": kw.pop("_kwargs", {}),
        "input_shape": shape,
        "training": kw.pop("_training", False),
        "input_scale": kw.pop("_scale", 1.0),
        "input_shift": kw.pop("_shift", 0.0),
        "keep_init": kw.pop("_keep_init", False),
        "argscope": kw.pop("_argscope", []),
        "scope": kw.pop("_scope", None),
        "seed": kw.pop("_seed", 0),
    }
    spec["kwargs"].update(kw)
    return spec


RELU = "relu"

CASES: list[dict[str, Any]] = [
    # ---------------------------------------------------------------- Conv2D
    case("conv2d_nhwc_basic", "Conv2D", [2, 7, 7, 3], 4, 3),
    case("conv2d_nhwc_same_s2_odd", "Conv2D", [2, 8, 9, 3], 5, 3, strides=2),
    case("conv2d_nhwc_same_k4_s3", "Conv2D", [2, 10, 11, 2], 3, 4, strides=3),
    case(
        "conv2d_nhwc_valid_rect", "Conv2D", [2, 9, 8, 3], 4, (2, 3), strides=(1, 2), padding="valid"
    ),
    case("conv2d_nhwc_valid_upper", "Conv2D", [2, 7, 7, 3], 4, 3, padding="VALID"),
    case("conv2d_nchw_same_s2", "Conv2D", [2, 3, 8, 9], 5, 3, strides=2, data_format="NCHW"),
    case(
        "conv2d_nchw_channels_first_valid",
        "Conv2D",
        [2, 3, 7, 6],
        4,
        (3, 2),
        padding="valid",
        data_format="channels_first",
    ),
    case("conv2d_nobias_relu", "Conv2D", [2, 6, 6, 3], 4, 3, use_bias=False, activation=RELU),
    case(
        "conv2d_aliases",
        "Conv2D",
        [2, 6, 6, 3],
        _kwargs={
            "out_channel": 4,
            "kernel_shape": 3,
            "stride": 2,
            "nl": "tanh",
            "W_init": {"constant": 0.05},
            "b_init": {"constant": 0.1},
        },
        _keep_init=True,
    ),
    case(
        "conv2d_init_kwargs",
        "Conv2D",
        [2, 5, 5, 2],
        3,
        1,
        kernel_initializer={"constant": -0.2},
        bias_initializer={"constant": 0.3},
        _keep_init=True,
    ),
    case(
        "conv2d_bnrelu_train_nhwc",
        "Conv2D",
        [4, 6, 6, 3],
        4,
        3,
        activation="BNReLU",
        _training=True,
    ),
    case(
        "conv2d_bnrelu_infer_nchw",
        "Conv2D",
        [2, 3, 6, 6],
        4,
        3,
        activation="BNReLU",
        data_format="NCHW",
    ),
    case("conv2d_split_nhwc", "Conv2D", [2, 6, 6, 4], 6, 3, split=2),
    case(
        "conv2d_split_nchw_s2", "Conv2D", [2, 6, 7, 5], 6, 3, split=3, strides=2, data_format="NCHW"
    ),
    case("conv2d_dilation_nhwc", "Conv2D", [2, 9, 9, 3], 4, 3, dilation_rate=2),
    case(
        "conv2d_dilation_nchw_valid",
        "Conv2D",
        [2, 3, 9, 10],
        4,
        3,
        dilation_rate=(2, 3),
        padding="valid",
        data_format="NCHW",
    ),
    case(
        "conv2d_argscope_positional_wins",
        "Conv2D",
        [2, 6, 6, 3],
        4,
        1,
        _argscope=[["Conv2D", {"filters": 7, "kernel_size": 5, "activation": RELU}]],
    ),
    case(
        "conv2d_argscope_defaults",
        "Conv2D",
        [2, 6, 6, 3],
        strides=2,
        _argscope=[["Conv2D", {"filters": 3, "kernel_size": 3, "data_format": "NHWC"}]],
    ),
    case("conv2d_in_scope", "Conv2D", [2, 5, 5, 2], 3, 3, _scope="group0/block1"),
    # ---------------------------------------------------------------- FullyConnected
    case("fc_2d", "FullyConnected", [3, 7], 5),
    case("fc_flatten_4d", "FullyConnected", [2, 3, 4, 5], 6),
    case(
        "fc_out_dim_nl_nobias",
        "FullyConnected",
        [3, 7],
        _kwargs={"out_dim": 4, "nl": "tanh", "use_bias": False},
    ),
    case(
        "fc_init_kwargs",
        "FullyConnected",
        [3, 4],
        2,
        kernel_initializer={"constant": 0.3},
        bias_initializer={"constant": -0.1},
        _keep_init=True,
    ),
    case("fc_bnrelu_train", "FullyConnected", [6, 5], 4, activation="BNReLU", _training=True),
    # ---------------------------------------------------------------- BatchNorm
    case("bn_nhwc_train", "BatchNorm", [4, 5, 5, 3], _training=True, _shift=0.5),
    case("bn_nhwc_infer", "BatchNorm", [4, 5, 5, 3]),
    case("bn_nchw_train", "BatchNorm", [4, 3, 5, 5], data_format="NCHW", _training=True),
    case("bn_nchw_infer", "BatchNorm", [4, 3, 5, 5], data_format="channels_first"),
    case("bn_2d_train", "BatchNorm", [6, 5], _training=True, _shift=0.3),
    case("bn_2d_infer", "BatchNorm", [6, 5]),
    case(
        "bn_4d_small_eps_train",
        "BatchNorm",
        [4, 3, 3, 2],
        epsilon=1e-7,
        _training=True,
        _scale=1e-3,
    ),
    case("bn_4d_small_eps_infer", "BatchNorm", [4, 3, 3, 2], epsilon=1e-7, _scale=1e-3),
    case("bn_2d_small_eps_train", "BatchNorm", [6, 3], epsilon=1e-7, _training=True, _scale=1e-3),
    case("bn_momentum_eps", "BatchNorm", [4, 4, 4, 3], momentum=0.8, epsilon=1e-3, _training=True),
    case("bn_decay_alias", "BatchNorm", [6, 4], decay=0.7, _training=True),
    case("bn_no_center", "BatchNorm", [4, 4, 4, 3], center=False, _training=True),
    case(
        "bn_no_scale_use_scale_alias",
        "BatchNorm",
        [4, 4, 4, 3],
        use_scale=False,
        use_bias=False,
        _training=True,
    ),
    case("bn_frozen_in_training", "BatchNorm", [4, 4, 4, 3], training=False, _training=True),
    case("bn_use_local_stat_in_inference", "BatchNorm", [4, 4, 4, 3], use_local_stat=True),
    case(
        "bn_local_stat_internal_in_inference",
        "BatchNorm",
        [4, 4, 4, 3],
        training=True,
        ema_update="internal",
    ),
    case("bn_ema_skip", "BatchNorm", [4, 4, 4, 3], ema_update="skip", _training=True),
    case("bn_ema_internal", "BatchNorm", [4, 4, 4, 3], ema_update="internal", _training=True),
    case(
        "bn_gamma_init",
        "BatchNorm",
        [4, 4, 4, 3],
        gamma_init={"constant": 0.5},
        _training=True,
        _keep_init=True,
    ),
    case(
        "bn_beta_init",
        "BatchNorm",
        [6, 3],
        beta_initializer={"constant": 0.25},
        _training=True,
        _keep_init=True,
    ),
    case("bn_axis_explicit_nchw", "BatchNorm", [4, 3, 4, 4], axis=1, _training=True),
    case("bn_axis_explicit_nhwc", "BatchNorm", [4, 4, 4, 3], axis=3),
    case("bn_virtual_batch_nhwc", "BatchNorm", [8, 3, 3, 2], virtual_batch_size=2, _training=True),
    case(
        "bn_virtual_batch_nchw",
        "BatchNorm",
        [8, 2, 3, 3],
        virtual_batch_size=4,
        data_format="NCHW",
        _training=True,
    ),
    case("bn_virtual_batch_2d", "BatchNorm", [8, 3], virtual_batch_size=4, _training=True),
    case("bn_virtual_batch_infer", "BatchNorm", [8, 3, 3, 2], virtual_batch_size=2),
    case("bnrelu_named_train", "BNReLU", [4, 3, 3, 2], _training=True),
    # ---------------------------------------------------------------- pooling
    case("maxpool_valid", "MaxPooling", [2, 6, 7, 3], 2),
    case("maxpool_same_s2_odd", "MaxPooling", [2, 7, 8, 3], 3, 2, padding="same"),
    case(
        "maxpool_nchw_aliases",
        "MaxPooling",
        [2, 3, 7, 7],
        _kwargs={"shape": 3, "stride": 2, "padding": "SAME", "data_format": "NCHW"},
    ),
    case("maxpool_rect_strides", "MaxPooling", [2, 8, 9, 2], (2, 3), (1, 2)),
    case("avgpool_valid", "AvgPooling", [2, 6, 6, 3], 2),
    case("avgpool_same_s2_odd", "AvgPooling", [2, 7, 8, 3], 3, 2, padding="same"),
    case(
        "avgpool_same_nchw",
        "AvgPooling",
        [2, 3, 5, 6],
        2,
        2,
        padding="same",
        data_format="channels_first",
    ),
    case("avgpool_same_s1", "AvgPooling", [1, 4, 5, 1], 3, 1, padding="same"),
    case("gap_nhwc", "GlobalAvgPooling", [2, 4, 5, 3]),
    case("gap_nchw", "GlobalAvgPooling", [2, 3, 4, 5], data_format="NCHW"),
    # ---------------------------------------------------------------- Dropout
    case("dropout_infer_positional", "Dropout", [3, 4], 0.7),
    case("dropout_infer_rate", "Dropout", [3, 4], rate=0.3),
]
