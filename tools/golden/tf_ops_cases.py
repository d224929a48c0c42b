"""The cases of tools/golden/tf_ops.py: each a function's source written against ``tf``
(run there with ``tf = tf.compat.v1``, replayed by the tests with ``tpflax.compat.tf``) and its
inputs, drawn from a seeded generator. Random ops and initializers are listed with what their
statistics can pin (bounded distributions: their extremes too; constants: exact values)."""

from __future__ import annotations

import numpy as np

RNG = np.random.RandomState(20)


def F(*shape):
    return RNG.randn(*shape).astype("float32")


def P(*shape):
    return RNG.uniform(0.5, 2.0, shape).astype("float32")


def I(lo, hi, *shape):  # noqa: E743
    return RNG.randint(lo, hi, shape).astype("int32")


def B(*shape):
    return RNG.rand(*shape) < 0.5


def V(values, dtype="float32"):
    return np.asarray(values, dtype)


TIES_A = V([[1.0, 2.0, 3.0, 4.0, -1.0], [0.0, 2.0, -3.0, 4.0, 5.0]])
TIES_B = V([[1.0, 0.0, 3.0, 5.0, -1.0], [0.0, 2.5, -3.0, 3.0, 6.0]])
KINKS = V([[-2.0, -0.0, 0.0, 0.5, 6.0, 7.0], [-0.5, 1.0, -1.5, 2.5, -2.5, 3.5]])


def cases():
    c = []
    add = c.append
    # reductions
    add(("reduce_mean_all", "lambda x: tf.reduce_mean(x)", [F(3, 4, 5)]))
    add(
        (
            "reduce_mean_axes_keepdims",
            "lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True)",
            [F(3, 4, 5)],
        )
    )
    add(("reduce_mean_keep_dims", "lambda x: tf.reduce_mean(x, 1, keep_dims=True)", [F(3, 4, 5)]))
    add(
        (
            "reduce_mean_reduction_indices",
            "lambda x: tf.reduce_mean(x, reduction_indices=[0])",
            [F(3, 4)],
        )
    )
    add(("reduce_mean_int", "lambda x: tf.reduce_mean(x, 1)", [I(-9, 9, 4, 5)]))
    add(("reduce_sum_neg_axis", "lambda x: tf.reduce_sum(x, -1)", [F(3, 4, 5)]))
    add(("reduce_sum_int", "lambda x: tf.reduce_sum(x, axis=0)", [I(-9, 9, 4, 5)]))
    add(("reduce_max_ties", "lambda x: tf.reduce_max(x, axis=1)", [V([[1, 3, 3], [2, 2, 2]])]))
    add(("reduce_max_all", "lambda x: tf.reduce_max(x)", [F(3, 4)]))
    add(("reduce_min_keepdims", "lambda x: tf.reduce_min(x, axis=0, keepdims=True)", [F(3, 4)]))
    add(("reduce_prod", "lambda x: tf.reduce_prod(x, 1)", [P(3, 4)]))
    add(("reduce_all", "lambda b: tf.reduce_all(b, 1)", [B(4, 3)]))
    add(("reduce_any", "lambda b: tf.reduce_any(b)", [B(4, 3)]))
    add(
        (
            "reduce_mean_of_list",
            "lambda x, y: tf.reduce_mean([tf.reduce_sum(x), tf.reduce_sum(y) * 0.5])",
            [F(3, 4), F(2, 3)],
        )
    )
    add(("reduce_logsumexp", "lambda x: tf.reduce_logsumexp(x, axis=1)", [F(3, 4)]))
    add(("count_nonzero_int", "lambda x: tf.count_nonzero(x, axis=1)", [I(-1, 2, 4, 5)]))
    add(("count_nonzero_float", "lambda x: tf.count_nonzero(tf.nn.relu(x))", [F(4, 5)]))
    add(("argmax_axis1", "lambda x: tf.argmax(x, 1)", [F(4, 5)]))
    add(("argmax_default_axis0", "lambda x: tf.argmax(x)", [F(4, 5)]))
    add(("argmin_int32", "lambda x: tf.argmin(x, axis=-1, output_type=tf.int32)", [F(4, 5)]))
    # elementwise, broadcasting
    for name in ("multiply", "add", "subtract", "truediv", "divide", "squared_difference"):
        add((f"{name}_broadcast", f"lambda x, y: tf.{name}(x, y)", [F(3, 4), P(4)]))
    add(("pow", "lambda x, y: tf.pow(x, y)", [P(3, 4), F(4)]))
    add(("maximum_ties", "lambda x, y: tf.maximum(x, y)", [TIES_A, TIES_B]))
    add(("minimum_ties", "lambda x, y: tf.minimum(x, y)", [TIES_A, TIES_B]))
    add(("maximum_scalar", "lambda x: tf.maximum(x, 0.0)", [KINKS]))
    ints = [V([-7, -6, 5, 9, 0, 8], "int32"), V([2, -4, 3, -5, 3, 3], "int32")]
    add(("truediv_int", "lambda x, y: tf.truediv(x, y)", ints))
    add(("div_int", "lambda x, y: tf.div(x, y)", ints))
    add(("div_float", "lambda x, y: tf.div(x, y)", [F(3, 4), P(3, 4)]))
    add(("floordiv_int", "lambda x, y: tf.floordiv(x, y)", ints))
    add(("floormod_int", "lambda x, y: tf.floormod(x, y)", ints))
    add(("mod_float", "lambda x, y: tf.mod(x, y)", [F(3, 4) * 3, P(3, 4)]))
    for name in ("equal", "not_equal", "greater", "greater_equal", "less", "less_equal"):
        add((f"{name}", f"lambda x, y: tf.{name}(x, y)", [TIES_A, TIES_B]))
    add(("equal_int_scalar", "lambda x: tf.equal(x, 2)", [I(0, 4, 3, 4)]))
    for name in ("logical_and", "logical_or", "logical_xor"):
        add((name, f"lambda a, b: tf.{name}(a, b)", [B(3, 4), B(3, 4)]))
    add(("logical_not", "lambda a: tf.logical_not(a)", [B(3, 4)]))
    for name in ("square", "sign", "floor", "ceil", "exp", "tanh", "sigmoid", "negative"):
        add((name, f"lambda x: tf.{name}(x)", [KINKS]))
    add(("abs_at_zero", "lambda x: tf.abs(x)", [KINKS]))
    add(("abs_int", "lambda x: tf.abs(x)", [I(-5, 5, 6)]))
    add(("round_half_even", "lambda x: tf.round(x)", [KINKS]))
    for name in ("sqrt", "rsqrt", "log", "log1p", "reciprocal"):
        add((name, f"lambda x: tf.{name}(x)", [P(3, 4)]))
    add(("sin_cos", "lambda x: tf.sin(x) + tf.cos(x)", [F(3, 4)]))
    add(("add_n", "lambda x, y, z: tf.add_n([x, y, z])", [F(3, 4), F(3, 4), F(3, 4)]))
    add(("clip_by_value_edges", "lambda x: tf.clip_by_value(x, -0.5, 2.5)", [KINKS]))
    add(
        ("clip_by_value_tensors", "lambda x, lo: tf.clip_by_value(x, lo, 1.0)", [F(3, 4), F(4) - 1])
    )
    add(("matmul", "lambda a, b: tf.matmul(a, b)", [F(3, 4), F(4, 5)]))
    add(
        ("matmul_transpose_b", "lambda a, b: tf.matmul(a, b, transpose_b=True)", [F(3, 4), F(5, 4)])
    )
    add(
        (
            "matmul_batched_transpose_a",
            "lambda a, b: tf.matmul(a, b, transpose_a=True)",
            [F(2, 4, 3), F(2, 4, 5)],
        )
    )
    add(("cumsum", "lambda x: tf.cumsum(x, axis=1)", [F(3, 4)]))
    add(
        (
            "cumsum_exclusive_reverse",
            "lambda x: tf.cumsum(x, 1, exclusive=True, reverse=True)",
            [F(3, 4)],
        )
    )
    # array ops
    add(("cast_float_to_int", "lambda x: tf.cast(x * 3, tf.int32)", [F(3, 4)]))
    add(("cast_int_to_float", "lambda x: tf.cast(x, tf.float32)", [I(-5, 5, 3, 4)]))
    add(("cast_to_bool_and_back", "lambda x: tf.cast(tf.cast(x, tf.bool), tf.float32)", [KINKS]))
    add(("cast_float_grad", "lambda x: tf.cast(x, tf.float32) * x", [F(3, 4)]))
    add(("to_float", "lambda x: tf.to_float(x)", [I(-5, 5, 3)]))
    add(("to_int32", "lambda x: tf.to_int32(x)", [KINKS]))
    add(("reshape_minus_one", "lambda x: tf.reshape(x, [-1, 4])", [F(2, 3, 4)]))
    add(("reshape_from_shape", "lambda x: tf.reshape(x, [tf.shape(x)[0], -1])", [F(2, 3, 4)]))
    add(
        (
            "reshape_from_stack",
            "lambda x: tf.reshape(x, tf.stack([tf.shape(x)[0] * tf.shape(x)[1], -1]))",
            [F(2, 3, 4)],
        )
    )
    add(
        (
            "reshape_from_concat",
            "lambda x: tf.reshape(x, tf.concat([tf.shape(x)[:1], [-1, 2]], 0))",
            [F(2, 3, 4)],
        )
    )
    add(
        (
            "concat_positional_name",
            "lambda x, y: tf.concat([x, y], 2, 'viz')",
            [F(2, 3, 4), F(2, 3, 2)],
        )
    )
    add(("concat_neg_axis", "lambda x, y: tf.concat([x, y], axis=-1)", [F(2, 3), F(2, 1)]))
    add(("transpose_perm", "lambda x: tf.transpose(x, [0, 2, 1])", [F(2, 3, 4)]))
    add(("transpose_default", "lambda x: tf.transpose(x)", [F(2, 3, 4)]))
    add(("shape", "lambda x: tf.shape(x)", [F(2, 3, 4)]))
    add(("size", "lambda x: tf.size(x)", [F(2, 3, 4)]))
    add(("rank", "lambda x: tf.rank(x)", [F(2, 3, 4)]))
    add(("expand_dims", "lambda x: tf.expand_dims(x, 1)", [F(2, 3)]))
    add(("expand_dims_dim", "lambda x: tf.expand_dims(x, dim=-1)", [F(2, 3)]))
    add(("squeeze_all", "lambda x: tf.squeeze(x)", [F(2, 1, 3, 1)]))
    add(("squeeze_axis", "lambda x: tf.squeeze(x, axis=[1])", [F(2, 1, 3, 1)]))
    add(("squeeze_dims", "lambda x: tf.squeeze(x, squeeze_dims=[3])", [F(2, 1, 3, 1)]))
    add(("gather_2d_indices", "lambda p, i: tf.gather(p, i)", [F(5, 3), I(0, 5, 2, 4)]))
    add(("gather_axis1", "lambda p, i: tf.gather(p, i, axis=1)", [F(2, 5, 3), I(0, 5, 4)]))
    add(("gather_repeated", "lambda p, i: tf.gather(p, i)", [F(4, 3), V([1, 1, 3, 1], "int32")]))
    add(
        (
            "gather_batch_dims",
            "lambda p, i: tf.gather(p, i, axis=1, batch_dims=1)",
            [F(2, 5, 3), I(0, 5, 2, 4)],
        )
    )
    add(
        (
            "gather_nd",
            "lambda p, i: tf.gather_nd(p, i)",
            [F(4, 5, 2), V([[0, 1], [3, 4], [0, 1]], "int32")],
        )
    )
    add(
        (
            "gather_nd_full",
            "lambda p, i: tf.gather_nd(p, i)",
            [F(4, 5), V([[[0, 1]], [[3, 4]]], "int32")],
        )
    )
    add(
        (
            "gather_nd_batch_dims",
            "lambda p, i: tf.gather_nd(p, i, batch_dims=1)",
            [F(2, 5, 3), V([[[1], [4]], [[0], [0]]], "int32")],
        )
    )
    add(("where_3arg", "lambda c, x, y: tf.where(c, x, y)", [B(3, 4), F(3, 4), F(3, 4)]))
    add(
        (
            "where_vector_rows",
            "lambda c, x, y: tf.where(c, x, y)",
            [V([True, False, True], "bool"), F(3, 4), F(3, 4)],
        )
    )
    add(("where_from_compare", "lambda x: tf.where(tf.greater(x, 0.0), x, 0.1 * x)", [KINKS]))
    add(("split_int", "lambda x: tf.split(x, 2, axis=1)", [F(3, 4)]))
    add(("split_sizes_minus_one", "lambda x: tf.split(x, [1, -1, 2], 1)", [F(3, 6)]))
    add(("pad_constant", "lambda x: tf.pad(x, [[1, 2], [0, 1]], constant_values=1.5)", [F(3, 4)]))
    add(
        (
            "pad_reflect",
            "lambda x: tf.pad(x, [[0, 0], [2, 1], [1, 2], [0, 0]], 'REFLECT')",
            [F(1, 4, 4, 2)],
        )
    )
    add(
        (
            "pad_symmetric",
            "lambda x: tf.pad(x, [[0, 0], [2, 1], [1, 2], [0, 0]], mode='SYMMETRIC')",
            [F(1, 4, 4, 2)],
        )
    )
    add(("pad_lowercase_reflect", "lambda x: tf.pad(x, [[1, 1], [1, 1]], 'reflect')", [F(3, 4)]))
    add(("pad_int", "lambda x: tf.pad(x, [[1, 0]])", [I(0, 9, 4)]))
    add(("constant_float", "lambda: tf.constant(3.5)", []))
    add(("constant_int_list", "lambda: tf.constant([1, 2, 3])", []))
    add(("constant_fill_scalar", "lambda: tf.constant(0.5, shape=[2, 3])", []))
    add(("constant_fill_last", "lambda: tf.constant([1.0, 2.0], shape=[2, 3])", []))
    add(("constant_dtype", "lambda: tf.constant([1, 2], dtype=tf.float32)", []))
    add(("constant_times_x", "lambda x: x * tf.constant([[1.0, 2.0, 3.0, 4.0]])", [F(3, 4)]))
    add(("zeros", "lambda: tf.zeros([2, 3])", []))
    add(("ones_int", "lambda: tf.ones([2, 3], tf.int32)", []))
    add(("zeros_like", "lambda x: tf.zeros_like(x)", [F(2, 3)]))
    add(("ones_like_dtype", "lambda x: tf.ones_like(x, dtype=tf.int32)", [F(2, 3)]))
    add(("fill", "lambda: tf.fill([2, 3], 7)", []))
    add(("stack_axis1", "lambda x, y: tf.stack([x, y], axis=1)", [F(2, 3), F(2, 3)]))
    add(("unstack_axis1", "lambda x: tf.unstack(x, axis=1)", [F(2, 3, 4)]))
    add(("tile", "lambda x: tf.tile(x, [2, 1, 3])", [F(2, 3, 1)]))
    add(("one_hot", "lambda i: tf.one_hot(i, 4)", [V([0, 3, 1, -1, 4], "int32")]))
    add(
        (
            "one_hot_values_axis0",
            "lambda i: tf.one_hot(i, 3, on_value=5.0, off_value=-1.0, axis=0)",
            [V([[0, 2], [1, 1]], "int32")],
        )
    )
    add(("one_hot_int_dtype", "lambda i: tf.one_hot(i, 3, dtype=tf.int32)", [V([2, 0], "int32")]))
    add(("range_limit", "lambda: tf.range(5)", []))
    add(("range_start_delta", "lambda: tf.range(1, 10, 3)", []))
    add(("range_negative_delta", "lambda: tf.range(10, 0, -3)", []))
    add(("range_float", "lambda: tf.range(0.0, 1.0, 0.1)", []))
    add(("slice", "lambda x: tf.slice(x, [1, 0, 2], [2, -1, 1])", [F(3, 4, 5)]))
    add(("stop_gradient", "lambda x: x * tf.stop_gradient(x)", [F(3, 4)]))
    add(("reverse", "lambda x: tf.reverse(x, [1])", [F(3, 4)]))
    # tf.nn
    add(("nn_relu", "lambda x: tf.nn.relu(x)", [KINKS]))
    add(("nn_relu6", "lambda x: tf.nn.relu6(x)", [KINKS]))
    add(("nn_leaky_relu_default", "lambda x: tf.nn.leaky_relu(x)", [KINKS]))
    add(("nn_leaky_relu_alpha", "lambda x: tf.nn.leaky_relu(x, alpha=0.1)", [KINKS]))
    add(("nn_elu", "lambda x: tf.nn.elu(x)", [KINKS]))
    add(("nn_softplus", "lambda x: tf.nn.softplus(x)", [KINKS]))
    add(("nn_sigmoid_tanh", "lambda x: tf.nn.sigmoid(x) + tf.nn.tanh(x)", [F(3, 4)]))
    add(("nn_softmax", "lambda x: tf.nn.softmax(x)", [F(3, 4)]))
    add(("nn_softmax_axis", "lambda x: tf.nn.softmax(x, axis=1)", [F(2, 3, 4)]))
    add(("nn_softmax_dim", "lambda x: tf.nn.softmax(x, dim=0)", [F(3, 4)]))
    add(("nn_log_softmax", "lambda x: tf.nn.log_softmax(x)", [F(3, 4)]))
    add(
        (
            "nn_sparse_xent",
            "lambda x, y: tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=x)",
            [F(5, 4), I(0, 4, 5)],
        )
    )
    add(
        (
            "nn_softmax_xent_v1",
            "lambda x, y: tf.nn.softmax_cross_entropy_with_logits("
            "labels=tf.nn.softmax(y), logits=x)",
            [F(5, 4), F(5, 4)],
        )
    )
    add(
        (
            "nn_softmax_xent_v2",
            "lambda x, y: tf.nn.softmax_cross_entropy_with_logits_v2("
            "labels=tf.nn.softmax(y), logits=x)",
            [F(5, 4), F(5, 4)],
        )
    )
    add(
        (
            "nn_sigmoid_xent",
            "lambda x, z: tf.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x)",
            [KINKS, RNG.rand(2, 6).astype("float32")],
        )
    )
    add(("nn_l2_loss", "lambda x: tf.nn.l2_loss(x)", [F(3, 4)]))
    add(("nn_l2_normalize", "lambda x: tf.nn.l2_normalize(x, axis=1)", [F(3, 4)]))
    add(
        (
            "nn_in_top_k_ties",
            "lambda p, t: tf.nn.in_top_k(p, t, 2)",
            [V([[1, 3, 3, 2], [5, 5, 5, 1], [0, 1, 2, 3]]), V([2, 2, 0], "int32")],
        )
    )
    add(("nn_top_k_ties", "lambda x: tf.nn.top_k(x, k=2)", [V([[1, 3, 3, 2], [5, 5, 5, 1]])]))
    add(("nn_top_k_default", "lambda x: tf.nn.top_k(x)", [F(3, 5)]))
    add(("nn_moments", "lambda x: tf.nn.moments(x, axes=[0, 1, 2])", [F(2, 3, 3, 4)]))
    add(("nn_moments_keep_dims", "lambda x: tf.nn.moments(x, [1], keep_dims=True)", [F(3, 4)]))
    add(
        (
            "nn_batch_normalization",
            "lambda x, m, v, b, g: tf.nn.batch_normalization(x, m, v, b, g, 1e-3)",
            [F(2, 3, 4), F(4), P(4), F(4), P(4)],
        )
    )
    add(
        (
            "nn_batch_normalization_none",
            "lambda x, m, v: tf.nn.batch_normalization(x, m, v, None, None, 1e-5)",
            [F(2, 3, 4), F(4), P(4)],
        )
    )
    add(
        (
            "nn_lrn",
            "lambda x: tf.nn.lrn(x, depth_radius=2, bias=1.0, alpha=0.1, beta=0.75)",
            [F(2, 3, 3, 7)],
        )
    )
    add(("nn_lrn_default", "lambda x: tf.nn.lrn(x)", [F(1, 2, 2, 12)]))
    add(
        (
            "nn_embedding_lookup",
            "lambda p, i: tf.nn.embedding_lookup(p, i)",
            [F(6, 3), V([[1, 5], [1, 0]], "int32")],
        )
    )
    add(
        (
            "nn_conv2d_same_s2",
            "lambda x, w: tf.nn.conv2d(x, w, [1, 2, 2, 1], 'SAME')",
            [F(2, 7, 7, 3), F(3, 3, 3, 4)],
        )
    )
    add(
        (
            "nn_conv2d_valid_dilated",
            "lambda x, w: tf.nn.conv2d(x, w, strides=[1, 1, 1, 1], padding='VALID', "
            "dilations=[1, 2, 2, 1])",
            [F(1, 8, 8, 2), F(3, 3, 2, 3)],
        )
    )
    add(
        (
            "nn_conv2d_explicit",
            "lambda x, w: tf.nn.conv2d(x, w, 1, [[0, 0], [1, 0], [2, 1], [0, 0]])",
            [F(1, 5, 5, 2), F(2, 3, 2, 3)],
        )
    )
    add(("nn_bias_add", "lambda x, b: tf.nn.bias_add(x, b)", [F(2, 3, 4), F(4)]))
    add(
        (
            "nn_max_pool_same",
            "lambda x: tf.nn.max_pool(x, [1, 3, 3, 1], [1, 2, 2, 1], 'SAME')",
            [F(2, 5, 5, 3)],
        )
    )
    add(
        (
            "nn_max_pool_valid",
            "lambda x: tf.nn.max_pool(x, ksize=2, strides=2, padding='VALID')",
            [F(1, 4, 6, 2)],
        )
    )
    add(
        (
            "nn_avg_pool_same",
            "lambda x: tf.nn.avg_pool(x, [1, 3, 3, 1], [1, 2, 2, 1], 'SAME')",
            [F(2, 5, 5, 3)],
        )
    )
    add(
        (
            "nn_avg_pool_valid",
            "lambda x: tf.nn.avg_pool(x, [1, 2, 2, 1], [1, 2, 2, 1], 'VALID')",
            [F(1, 4, 6, 2)],
        )
    )
    # tf.image
    img = F(2, 3, 4, 2)
    for align in (False, True):
        for size in ((6, 9), (2, 3)):
            tag = f"{'align' if align else 'noalign'}_{size[0]}x{size[1]}"
            add(
                (
                    f"image_nearest_{tag}",
                    f"lambda x: tf.image.resize_nearest_neighbor(x, {list(size)}, "
                    f"align_corners={align})",
                    [img],
                )
            )
            add(
                (
                    f"image_bilinear_{tag}",
                    f"lambda x: tf.image.resize_bilinear(x, {list(size)}, align_corners={align})",
                    [img],
                )
            )
    add(
        (
            "image_bilinear_half_pixel",
            "lambda x: tf.image.resize_bilinear(x, [5, 7], half_pixel_centers=True)",
            [img],
        )
    )
    add(
        (
            "image_nearest_half_pixel",
            "lambda x: tf.image.resize_nearest_neighbor(x, [5, 7], half_pixel_centers=True)",
            [img],
        )
    )
    add(
        (
            "image_bilinear_from_shape",
            "lambda x: tf.image.resize_bilinear(x, tf.shape(x)[1:3] * 2, align_corners=True)",
            [img],
        )
    )
    add(("image_grayscale_to_rgb", "lambda x: tf.image.grayscale_to_rgb(x)", [F(2, 3, 3, 1)]))
    add(("image_resize_images_bilinear", "lambda x: tf.image.resize_images(x, [5, 7])", [img]))
    add(
        (
            "image_resize_images_nearest_align",
            "lambda x: tf.image.resize_images(x, [6, 9], method=1, align_corners=True)",
            [img],
        )
    )
    add(("image_resize_images_same_size", "lambda x: tf.image.resize_images(x, [3, 4])", [img]))
    # gradient ops, more nn and math
    add(
        (
            "custom_gradient_straight_through",
            "lambda x: tf.custom_gradient(lambda x: (tf.round(x * 3.0) / 3.0, "
            "lambda dy: dy * 0.5))(x)",
            [F(3, 4)],
        )
    )
    add(
        (
            "custom_gradient_two_inputs",
            "lambda x, y: tf.custom_gradient(lambda a, b: (a * b, lambda dy: (dy, dy * b)))(x, y)",
            [F(3, 4), F(3, 4)],
        )
    )
    add(
        (
            "nn_conv2d_transpose_same_s2",
            "lambda x, w: tf.nn.conv2d_transpose(x, w, [2, 8, 8, 3], [1, 2, 2, 1])",
            [F(2, 4, 4, 5), F(3, 3, 3, 5)],
        )
    )
    add(
        (
            "nn_conv2d_transpose_valid",
            "lambda x, w: tf.nn.conv2d_transpose(x, w, [1, 7, 7, 2], [1, 2, 2, 1], 'VALID')",
            [F(1, 3, 3, 4), F(3, 3, 2, 4)],
        )
    )
    add(
        (
            "nn_depthwise_conv2d",
            "lambda x, w: tf.nn.depthwise_conv2d(x, w, [1, 2, 2, 1], 'SAME')",
            [F(2, 5, 5, 3), F(3, 3, 3, 2)],
        )
    )
    add(("nn_xw_plus_b", "lambda x, w, b: tf.nn.xw_plus_b(x, w, b)", [F(3, 4), F(4, 5), F(5)]))
    add(("einsum", "lambda a, b: tf.einsum('bij,bjk->bik', a, b)", [F(2, 3, 4), F(2, 4, 5)]))
    add(
        (
            "div_no_nan",
            "lambda x, y: tf.div_no_nan(x, y)",
            [F(2, 3), V([[1.0, 0.0, 2.0], [0.0, -1.0, 0.5]])],
        )
    )
    # tf.losses
    add(("losses_mse", "lambda y, p: tf.losses.mean_squared_error(y, p)", [F(4, 3), F(4, 3)]))
    add(
        (
            "losses_mse_weights",
            "lambda y, p, w: tf.losses.mean_squared_error(y, p, weights=w)",
            [F(4, 3), F(4, 3), V([[1.0], [0.0], [2.0], [0.5]])],
        )
    )
    add(("losses_huber", "lambda y, p: tf.losses.huber_loss(y, p)", [F(4, 3), F(4, 3) * 2]))
    add(
        (
            "losses_huber_delta_weights",
            "lambda y, p, w: tf.losses.huber_loss(y, p, weights=w, delta=0.5)",
            [F(4, 3), F(4, 3), V([[1.0, 0.0, 2.0]])],
        )
    )
    add(
        (
            "losses_absolute_difference",
            "lambda y, p: tf.losses.absolute_difference(y, p)",
            [F(4, 3), F(4, 3)],
        )
    )
    add(
        (
            "losses_sparse_xent",
            "lambda y, x: tf.losses.sparse_softmax_cross_entropy(y, x)",
            [I(0, 4, 5), F(5, 4)],
        )
    )
    add(
        (
            "losses_softmax_xent_smoothing",
            "lambda y, x: tf.losses.softmax_cross_entropy(y, x, label_smoothing=0.1)",
            [RNG.rand(5, 4).astype("float32"), F(5, 4)],
        )
    )
    add(
        (
            "losses_sigmoid_xent_weights",
            "lambda y, x, w: tf.losses.sigmoid_cross_entropy(y, x, weights=w, label_smoothing=0.2)",
            [RNG.rand(4, 3).astype("float32"), F(4, 3), V([[1.0], [0.0], [2.0], [1.0]])],
        )
    )
    # control flow, more array and math ops
    add(
        (
            "cond_traced",
            "lambda x: tf.cond(tf.reduce_sum(x) > 0, lambda: x * 2.0, lambda: x - 1.0)",
            [F(3, 4)],
        )
    )
    add(
        (
            "cond_traced_false",
            "lambda x: tf.cond(tf.reduce_sum(x) < -100.0, lambda: x * 2.0, lambda: tf.square(x))",
            [F(3, 4)],
        )
    )
    add(
        (
            "while_loop_max_iterations",
            "lambda x: tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 1.5 + 1.0), "
            "[tf.constant(0), x], maximum_iterations=5)[1]",
            [F(3, 4)],
        )
    )
    add(
        (
            "while_loop_int",
            "lambda n: tf.while_loop(lambda i, s: i < 4, lambda i, s: (i + 1, s + i * n), [0, n])",
            [V([1, 2, 3], "int32")],
        )
    )
    add(
        (
            "while_loop_one_var",
            "lambda x: tf.while_loop(lambda v: tf.reduce_sum(v) < 100.0, lambda v: v * 2.0, [x], "
            "maximum_iterations=8)",
            [P(2, 3)],
        )
    )
    add(
        (
            "custom_gradient_two_outputs",
            "lambda x: tf.custom_gradient(lambda a: ((a * 2.0, a * a), "
            "lambda d1, d2: d1 * 0.5 + d2))(x)",
            [F(3, 4)],
        )
    )
    add(("reduce_std", "lambda x: tf.math.reduce_std(x, axis=1)", [F(3, 4)]))
    add(
        (
            "reduce_variance",
            "lambda x: tf.math.reduce_variance(x, axis=[0, 1], keepdims=True)",
            [F(3, 4, 2)],
        )
    )
    add(("norm_default", "lambda x: tf.norm(x)", [F(3, 4)]))
    add(("norm_axis_l1", "lambda x: tf.norm(x, ord=1, axis=1)", [F(3, 4)]))
    add(("clip_by_norm", "lambda x: tf.clip_by_norm(x, 1.0)", [F(3, 4)]))
    add(("clip_by_norm_axes", "lambda x: tf.clip_by_norm(x, 0.8, axes=[1])", [F(3, 4)]))
    add(
        (
            "unsorted_segment_sum",
            "lambda x, i: tf.unsorted_segment_sum(x, i, 4)",
            [F(6, 2), V([0, 2, 2, 3, 0, 1], "int32")],
        )
    )
    add(("linspace", "lambda: tf.linspace(0.0, 1.0, 7)", []))
    add(("meshgrid", "lambda x, y: tf.meshgrid(x, y)", [F(3), F(4)]))
    add(("sequence_mask", "lambda n: tf.sequence_mask(n, 5)", [V([0, 2, 5, 3], "int32")]))
    add(
        (
            "sequence_mask_float",
            "lambda n: tf.sequence_mask(n, maxlen=4, dtype=tf.float32)",
            [V([[1, 3]], "int32")],
        )
    )
    add(
        (
            "scatter_nd_repeated",
            "lambda i, u: tf.scatter_nd(i, u, [4, 3])",
            [V([[0], [2], [0]], "int32"), F(3, 3)],
        )
    )
    special = V([[1.0, np.nan, np.inf], [-np.inf, 0.0, -2.0]])
    add(("is_nan", "lambda x: tf.is_nan(x)", [special]))
    add(("math_is_finite", "lambda x: tf.math.is_finite(x)", [special]))
    add(("where_v2_broadcast", "lambda c, x, y: tf.where_v2(c, x, y)", [B(3, 1), F(4), F(3, 4)]))
    add(("newaxis", "lambda x: x[:, tf.newaxis] * 2.0", [F(3, 4)]))
    add(("nn_max_pool2d", "lambda x: tf.nn.max_pool2d(x, 2, 2, 'VALID')", [F(1, 4, 4, 2)]))
    add(("nn_avg_pool2d", "lambda x: tf.nn.avg_pool2d(x, 3, 2, 'SAME')", [F(1, 5, 5, 2)]))
    add(
        (
            "nn_local_response_normalization",
            "lambda x: tf.nn.local_response_normalization(x, 1, 2.0, 0.5, 0.6)",
            [F(1, 2, 2, 5)],
        )
    )
    nchw = F(2, 3, 5, 5)
    add(
        (
            "nn_conv2d_nchw",
            "lambda x, w: tf.nn.conv2d(x, w, [1, 1, 2, 2], 'SAME', data_format='NCHW')",
            [nchw, F(3, 3, 3, 4)],
        )
    )
    add(
        (
            "nn_bias_add_nchw",
            "lambda x, b: tf.nn.bias_add(x, b, data_format='NCHW')",
            [nchw, F(3)],
        )
    )
    add(
        (
            "nn_max_pool_nchw",
            "lambda x: tf.nn.max_pool(x, [1, 1, 3, 3], [1, 1, 2, 2], 'SAME', data_format='NCHW')",
            [nchw],
        )
    )
    add(
        (
            "nn_avg_pool_nchw",
            "lambda x: tf.nn.avg_pool(x, [1, 1, 3, 3], [1, 1, 2, 2], 'SAME', data_format='NCHW')",
            [nchw],
        )
    )
    # tf.math
    add(("math_log", "lambda x: tf.math.log(x)", [P(3, 4)]))
    add(("math_reduce_mean", "lambda x: tf.math.reduce_mean(x, axis=1)", [F(3, 4)]))
    add(("math_top_k", "lambda x: tf.math.top_k(x, 3)", [F(2, 6)]))
    add(("math_in_top_k", "lambda p, t: tf.math.in_top_k(p, t, 1)", [F(4, 5), I(0, 5, 4)]))
    add(
        (
            "math_squared_difference",
            "lambda x, y: tf.math.squared_difference(x, y)",
            [F(3, 4), F(3, 4)],
        )
    )
    # tf.nn.weighted_cross_entropy_with_logits (HED's class-balanced loss): the kinks at 0,
    # labels not only 0/1, pos_weight a scalar tensor, a per-class vector, a Python float
    add(
        (
            "nn_weighted_xent",
            "lambda x, z, q: tf.nn.weighted_cross_entropy_with_logits(labels=z, logits=x, "
            "pos_weight=q)",
            [KINKS, RNG.rand(2, 6).astype("float32"), V(1.7)],
        )
    )
    add(
        (
            "nn_weighted_xent_targets_per_class",
            "lambda x, z, q: tf.nn.weighted_cross_entropy_with_logits(targets=z, logits=x, "
            "pos_weight=q, name='wxent')",
            [F(4, 3) * 3, V(RNG.rand(4, 3) < 0.5), P(3)],
        )
    )
    add(
        (
            "nn_weighted_xent_python_weight",
            "lambda x, z: tf.nn.weighted_cross_entropy_with_logits(z, x, 0.25)",
            [F(3, 5), RNG.rand(3, 5).astype("float32")],
        )
    )
    # tf.distributions (InfoGAN's latent codes): TensorFlow's formulas, broadcasting of the
    # classes against the batch, probs given instead of logits
    add(
        (
            "dist_categorical_log_prob",
            "lambda x, k: tf.distributions.Categorical(logits=x).log_prob(k)",
            [F(4, 5), I(0, 5, 4)],
        )
    )
    add(
        (
            "dist_categorical_log_prob_broadcast",
            "lambda x, k: tf.distributions.Categorical(logits=x, name='cat').log_prob(k)",
            [F(5), I(0, 5, 3, 2)],
        )
    )
    add(
        (
            "dist_categorical_entropy",
            "lambda x: tf.distributions.Categorical(logits=x).entropy(name='ent')",
            [F(3, 6) * 2],
        )
    )
    add(
        (
            "dist_categorical_probs",
            "lambda p, k: tf.distributions.Categorical(probs=p).entropy() + "
            "tf.distributions.Categorical(probs=p).prob(k)",
            [V([[0.2, 0.3, 0.5], [0.7, 0.1, 0.2]]), I(0, 3, 2)],
        )
    )
    add(
        (
            "dist_normal_log_prob",
            "lambda x, m, s: tf.distributions.Normal(m, scale=s).log_prob(x)",
            [F(4, 3), F(4, 3), P(3)],
        )
    )
    add(
        (
            "dist_normal_entropy_moments",
            "lambda m, s: tf.distributions.Normal(m, s).entropy() + "
            "tf.distributions.Normal(m, s).stddev() * tf.distributions.Normal(m, s).mean()",
            [F(2, 3), P(3)],
        )
    )
    add(
        (
            "dist_normal_python_scale",
            "lambda x, m: tf.distributions.Normal(m, scale=1.0).log_prob(x) + "
            "tf.distributions.Normal(m, scale=1.0).prob(x)",
            [F(3, 2), F(3, 2)],
        )
    )
    return c


# Random ops and initializers: sampled big enough for their statistics to pin the distribution.
RANDOM = [
    ("random_uniform", "lambda: tf.random_uniform([200, 100])", True),
    ("random_uniform_range", "lambda: tf.random_uniform([200, 100], -2.0, 3.0)", True),
    ("random_uniform_int", "lambda: tf.random_uniform([200, 100], 2, 7, dtype=tf.int32)", True),
    ("random_dot_uniform", "lambda: tf.random.uniform([200, 100], maxval=4.0)", True),
    ("random_normal", "lambda: tf.random_normal([200, 100], mean=1.0, stddev=2.0)", False),
    ("truncated_normal", "lambda: tf.truncated_normal([200, 100], mean=-1.0, stddev=0.5)", True),
    ("nn_dropout_rate", "lambda: tf.nn.dropout(tf.ones([200, 100]), rate=0.3)", True),
    (
        "nn_dropout_keep_prob",
        "lambda: tf.nn.dropout(tf.ones([200, 100]) * 2.0, keep_prob=0.8)",
        True,
    ),
    (
        "nn_dropout_noise_shape",
        "lambda: tf.nn.dropout(tf.ones([400, 50]), rate=0.5, noise_shape=[400, 1])",
        True,
    ),
    (
        "nn_dropout_noise_shape_none",
        "lambda: tf.nn.dropout(tf.ones([400, 50]), rate=0.25, noise_shape=[None, 1])",
        True,
    ),
    (
        "dist_categorical_sample",
        "lambda: tf.distributions.Categorical(logits=[[0.0, 1.0, 2.0], [2.0, 0.0, -1.0]])"
        ".sample(10000)",
        True,
    ),
    (
        "dist_normal_sample",
        "lambda: tf.distributions.Normal([1.0, -2.0], scale=[0.5, 2.0]).sample([100, 50])",
        False,
    ),
]
# (id, the initializer's source, the shape it fills, bounded or exact)
INITIALIZERS = [
    ("init_zeros", "lambda: tf.zeros_initializer()", [3, 4], "exact"),
    ("init_ones", "lambda: tf.ones_initializer()", [3, 4], "exact"),
    ("init_constant_scalar", "lambda: tf.constant_initializer(0.25)", [3, 4], "exact"),
    ("init_constant_list", "lambda: tf.constant_initializer([1.0, 2.0, 3.0])", [2, 3], "exact"),
    ("init_constant_short_list", "lambda: tf.constant_initializer([1.0, 2.0])", [2, 3], "exact"),
    (
        "init_random_normal",
        "lambda: tf.random_normal_initializer(0.5, 0.02)",
        [200, 100],
        "unbounded",
    ),
    (
        "init_random_normal_default",
        "lambda: tf.random_normal_initializer()",
        [200, 100],
        "unbounded",
    ),
    (
        "init_truncated_normal",
        "lambda: tf.truncated_normal_initializer(stddev=0.1)",
        [200, 100],
        "bounded",
    ),
    (
        "init_random_uniform",
        "lambda: tf.random_uniform_initializer(-0.3, 0.1)",
        [200, 100],
        "bounded",
    ),
    (
        "init_random_uniform_default",
        "lambda: tf.random_uniform_initializer()",
        [200, 100],
        "bounded",
    ),
    (
        "init_variance_scaling_default",
        "lambda: tf.variance_scaling_initializer()",
        [3, 3, 64, 32],
        "bounded",
    ),
    (
        "init_variance_scaling_fan_out",
        "lambda: tf.variance_scaling_initializer(scale=2.0, mode='fan_out')",
        [3, 3, 32, 64],
        "bounded",
    ),
    (
        "init_variance_scaling_normal",
        "lambda: tf.variance_scaling_initializer(2.0, distribution='normal')",
        [3, 3, 64, 32],
        "bounded",
    ),
    (
        "init_variance_scaling_untruncated",
        "lambda: tf.variance_scaling_initializer(distribution='untruncated_normal')",
        [200, 100],
        "unbounded",
    ),
    (
        "init_variance_scaling_uniform_avg",
        "lambda: tf.variance_scaling_initializer(3.0, 'fan_avg', 'uniform')",
        [200, 100],
        "bounded",
    ),
    ("init_glorot_uniform", "lambda: tf.glorot_uniform_initializer()", [3, 3, 64, 32], "bounded"),
    ("init_glorot_normal", "lambda: tf.glorot_normal_initializer()", [3, 3, 64, 32], "bounded"),
    (
        "init_keras_he_normal",
        "lambda: tf.keras.initializers.he_normal()",
        [3, 3, 64, 32],
        "bounded",
    ),
    (
        "init_keras_he_uniform",
        "lambda: tf.keras.initializers.he_uniform()",
        [3, 3, 64, 32],
        "bounded",
    ),
    ("init_he_normal", "lambda: tf.initializers.he_normal()", [3, 3, 64, 32], "bounded"),
    ("init_lecun_uniform", "lambda: tf.initializers.lecun_uniform()", [200, 100], "bounded"),
    (
        "init_keras_random_normal",
        "lambda: tf.keras.initializers.RandomNormal()",
        [200, 100],
        "unbounded",
    ),
    (
        "init_keras_random_uniform",
        "lambda: tf.keras.initializers.RandomUniform()",
        [200, 100],
        "bounded",
    ),
    (
        "init_keras_truncated_normal",
        "lambda: tf.keras.initializers.TruncatedNormal(stddev=0.2)",
        [200, 100],
        "bounded",
    ),
    (
        "init_keras_glorot_uniform",
        "lambda: tf.keras.initializers.glorot_uniform()",
        [200, 100],
        "bounded",
    ),
]
