"""tensorpack-style model functions run through ``tpflax.compat`` as written: each function
below is its TensorFlow original with only the imports changed (``tpflax.compat.tf`` for
``tensorflow``, ``tpflax.compat.tensorpack`` for ``tensorpack``), checked against the fixture
the original wrote: outputs, gradients, state after one step (BatchNorm's EMA, the moving
summaries) and tensors captured by TensorFlow name. The originals are tools/golden/generate.py's
models (whose hand ports, rewritten in jax.numpy, are in tests/test_golden_models.py) and
tools/golden/tf_compat_models.py's. ``python tools/portdiff.py --compat`` counts the lines each
port changed."""

from __future__ import annotations

import copy

import jax
import pytest
from golden_replay import Fixture, check_fixture, fixtures

from tpflax.compat import tf
from tpflax.compat.tensorpack import (
    AvgPooling,
    BatchNorm,
    BNReLU,
    Conv2D,
    Conv2DTranspose,
    FullyConnected,
    GlobalAvgPooling,
    InstanceNorm,
    MaxPooling,
    add_moving_summary,
    argscope,
    auto_reuse_variable_scope,
    freeze_variables,
    l2_regularizer,
    layer_register,
    regularize_cost,
    remap_variables,
)

tf1 = tf.compat.v1


@pytest.fixture(autouse=True)
def tensorflow_broadcasting():
    """TensorFlow broadcasts ranks implicitly ([2, 3] * [3]); the suite's conftest makes JAX
    raise on that, which TF-style model code must not."""
    with jax.numpy_rank_promotion("allow"):
        yield


# ------------------------------------------------ tools/golden/generate.py's models, ported
def model_tutorial(image):
    """The seed tutorial's argscope + LinearWrap example, at a small size."""
    from tpflax.compat.tensorpack import Conv2D, LinearWrap, MaxPooling

    with argscope(Conv2D, filters=8, kernel_size=3, activation=tf.nn.relu):
        l1 = (
            LinearWrap(image)
            .Conv2D("conv0")
            .MaxPooling("pool0", 2)
            .Conv2D("conv1", padding="SAME")
            .Conv2D("conv2", kernel_size=5)
            .FullyConnected("fc0", 16, activation=tf.nn.relu)
            .Dropout("dropout", rate=0.5)
            .tf.multiply(0.5)
            .apply(lambda t, k: t * k, 3.0)
            .FullyConnected("fc1", units=10, activation=tf.identity)()
        )
        with argscope([Conv2D, MaxPooling], data_format="NCHW"), argscope(Conv2D, kernel_size=1):
            l2 = (
                LinearWrap(tf.transpose(image, [0, 3, 1, 2]))
                .Conv2D("conv3", strides=2)
                .MaxPooling("pool3", 2)()
            )
    return [l1, l2]


def model_reuse(x):
    from tpflax.compat.tensorpack import FullyConnected

    with tf1.variable_scope("tower"):
        a = FullyConnected("fc", x, 4, activation=tf.nn.relu)
    with tf1.variable_scope("tower", reuse=True):
        b = FullyConnected("fc", x * 2.0, 4, activation=tf.nn.relu)
    return [a + b]


def model_regularizers(x):
    """The layers' kernel/bias/activity regularizers, summed by the collection."""
    from tpflax.compat.tensorpack import (
        Conv2D,
        FullyConnected,
        l1_regularizer,
        l2_regularizer,
        regularize_cost_from_collection,
    )

    l = Conv2D(
        "conv0",
        x,
        4,
        3,
        kernel_regularizer=l2_regularizer(0.01),
        bias_regularizer=l1_regularizer(0.1),
        activity_regularizer=l1_regularizer(0.001),
    )
    l = FullyConnected(
        "fc",
        l,
        3,
        activity_regularizer=l2_regularizer(0.5),
        kernel_regularizer=l1_regularizer(0.02),
        bias_regularizer=l2_regularizer(0.3),
    )
    return [l, regularize_cost_from_collection()]


def model_maxout(x):
    """tensorpack 0.11's Maxout fails on every input (`ch / num_unit` is a float shape). This
    is its code with the one fix its docstring implies (`//`), the reference for tpflax."""

    def maxout(t, num_unit):
        shape = t.shape.as_list()
        ch = shape[-1]
        if len(shape) == 4:
            t = tf.reshape(t, [-1, shape[1], shape[2], ch // num_unit, num_unit])
        else:
            t = tf.reshape(t, [-1, ch // num_unit, num_unit])
        return tf.reduce_max(t, len(shape), name="output")

    with tf1.variable_scope("maxout4"):
        a = maxout(x, 3)
    with tf1.variable_scope("maxout2"):
        b = maxout(tf.reshape(x, [x.shape[0], -1]), 2)
    return [a, b]


def model_renorm_2d(x):
    """tensorpack 0.11's BatchRenorm fails on 2-D inputs (it squeezes axes [1, 2] that a
    2-D tensor lacks); its docstring promises NC. The reference runs the same layer on the
    [N, 1, 1, C] view, which has the same statistics."""
    from tpflax.compat.tensorpack import BatchRenorm

    n, c = x.shape.as_list()
    y = BatchRenorm("renorm", tf.reshape(x, [n, 1, 1, c]), rmax=1.5, dmax=0.5, decay=0.8)
    return [tf.reshape(y, [n, c])]


def model_generator(z):
    """A small DCGAN/pix2pix-style net: Deconv2D, ConcatWith, LayerNorm, InstanceNorm, PReLU,
    FixedUnPooling and BNReLU under argscope and LinearWrap."""
    from tpflax.compat.tensorpack import (
        BNReLU,
        Deconv2D,
        FixedUnPooling,
        LinearWrap,
    )

    with argscope(Deconv2D, kernel_size=3, strides=2, activation=BNReLU):
        l = (
            LinearWrap(z)
            .FullyConnected("fc0", 2 * 2 * 6)
            .LayerNorm("ln0")
            .tf.reshape([-1, 2, 2, 6])
            .Deconv2D("deconv0", 5)
            .Deconv2D("deconv1", 4, padding="VALID")()
        )
        skip = FixedUnPooling("unpool", tf.nn.tanh(l), 2)
        up = Deconv2D("deconv2", l, 3, activation=tf.identity)
        l = (
            LinearWrap(up)
            .ConcatWith([skip[:, :, :, :2], skip], 3)
            .InstanceNorm("inorm")
            .PReLU("prelu", 0.2)
            .Conv2D("conv_out", 2, 3)()
        )
    return [l]


def model_fpn_rpn_head(x):
    """FasterRCNN's FPN RPN head (examples/FasterRCNN/modeling/model_rpn.py, model_fpn.py) at a
    small size: a registered layer over auto_reuse_variable_scope, called as 'rpn' on every
    level (NCHW), so the levels share rpn/*; the second and third calls' outputs are named
    rpn_1/..., rpn_2/... by TensorFlow."""
    from tpflax.compat.tensorpack import Conv2D, auto_reuse_variable_scope, layer_register

    @layer_register(log_shape=True)
    @auto_reuse_variable_scope
    def rpn_head(featuremap, channel, num_anchors):
        with argscope(Conv2D, data_format="channels_first"):
            hidden = Conv2D("conv0", featuremap, channel, 3, activation=tf.nn.relu)
            label_logits = Conv2D("class", hidden, num_anchors, 1)
            box_logits = Conv2D("box", hidden, 4 * num_anchors, 1)
            label_logits = tf.squeeze(tf.transpose(label_logits, [0, 2, 3, 1]), 0)
            shp = tf.shape(box_logits)
            box_logits = tf.transpose(box_logits, [0, 2, 3, 1])
            box_logits = tf.reshape(box_logits, tf.stack([shp[2], shp[3], num_anchors, 4]))
        return label_logits, box_logits

    with argscope(Conv2D, data_format="channels_first", kernel_size=3, strides=2):
        p3 = Conv2D("fpn/lat3", x, 4)
        p4 = Conv2D("fpn/lat4", p3, 4)
    outs = []
    for p in (x, p3, p4):
        label, box = rpn_head("rpn", p, 4, 2)
        outs += [label, box]
    return outs


def model_discrim_twice(image):
    """InfoGAN's pattern (examples/GAN/InfoGAN-mnist.py): an auto-reused discriminator called
    on real and on fake images in one scope, then once more under reuse=True; TensorFlow names
    the calls' layer outputs discrim/fct/output, discrim/fct_1/output, discrim_1/fct/output."""
    from tpflax.compat.tensorpack import Conv2D, LinearWrap, auto_reuse_variable_scope

    @auto_reuse_variable_scope
    def discriminator(imgs):
        with argscope(Conv2D, kernel_size=4, strides=2):
            return (
                LinearWrap(imgs)
                .Conv2D("conv0", 4, activation=tf.nn.leaky_relu)
                .FullyConnected("fct", 1)()
            )

    fake = tf.tanh(image * 0.5)
    with tf1.variable_scope("discrim"):
        real = discriminator(image)
        fake = discriminator(fake)
    with tf1.variable_scope("discrim", reuse=True):
        third = discriminator(image * 2.0)
    return [real, fake, third]


def _leaky(t, name=None):
    return tf.nn.leaky_relu(t, alpha=0.2, name=name)


def model_dcgan(image):
    """tensorpack's examples/GAN/DCGAN.py at a small size: the discriminator, with
    auto_reuse_variable_scope, runs on the real and on the generated images."""
    from tpflax.compat.tensorpack import (
        BNReLU,
        Conv2D,
        Conv2DTranspose,
        FullyConnected,
        LinearWrap,
        auto_reuse_variable_scope,
    )

    @auto_reuse_variable_scope
    def discriminator(imgs):
        with argscope(Conv2D, kernel_size=4, strides=2):
            return (
                LinearWrap(imgs)
                .Conv2D("conv0", 4, activation=tf.nn.leaky_relu)
                .Conv2D("conv1", 8)
                .BatchNorm("bn1")
                .tf.nn.leaky_relu()
                .FullyConnected("fct", 1)()
            )

    z = tf.reshape(image, [image.shape[0], -1])[:, :6]  # z comes from the input on both sides
    with tf1.variable_scope("gen"):
        l = FullyConnected("fc0", z, 2 * 2 * 8, activation=tf.identity)
        l = BNReLU(tf.reshape(l, [-1, 2, 2, 8]))
        with argscope(Conv2DTranspose, activation=BNReLU, kernel_size=4, strides=2):
            l = Conv2DTranspose("deconv1", l, 4)
            l = Conv2DTranspose("deconv2", l, 1, activation=tf.identity)
        fake = tf.tanh(l, name="gen")
    with tf1.variable_scope("discrim"):
        pos = discriminator(image)
        neg = discriminator(fake)
    return [tf.identity(pos, "pos"), tf.identity(neg, "neg"), fake]


def model_pix2pix(x):
    """tensorpack's examples/GAN/Image2Image.py at a small size, batch 1: a U-Net generator
    whose 1x1 bottleneck BatchNorm runs on one value per channel, and a discriminator run
    on the real and on the generated pair."""
    from tpflax.compat.tensorpack import (
        BatchNorm,
        BNReLU,
        Conv2D,
        Conv2DTranspose,
        LinearWrap,
        auto_reuse_variable_scope,
    )

    def bn_lrelu(t, name=None):
        return _leaky(BatchNorm("bn", t), name=name)

    @auto_reuse_variable_scope
    def discriminator(inputs, outputs):
        l = tf.concat([inputs, outputs], 3)
        with argscope(Conv2D, kernel_size=4, strides=2, activation=bn_lrelu):
            return (
                LinearWrap(l)
                .Conv2D("conv0", 4, activation=_leaky)
                .Conv2D("conv1", 8)
                .Conv2D("conv2", 8, strides=1, padding="VALID")
                .Conv2D("convlast", 1, kernel_size=1, strides=1, activation=tf.identity)()
            )

    inputs, outputs = x[..., :1], x[..., 1:]
    with tf1.variable_scope("gen"), argscope(BatchNorm, training=True):
        with argscope(Conv2D, kernel_size=4, strides=2, activation=bn_lrelu):
            e1 = Conv2D("conv1", inputs, 4, activation=_leaky)
            e2 = Conv2D("conv2", e1, 8)
            e3 = Conv2D("conv3", e2, 8)
            e4 = Conv2D("conv4", e3, 8, activation=BNReLU)  # 1x1
        with argscope(Conv2DTranspose, activation=BNReLU, kernel_size=4, strides=2):
            fake = (
                LinearWrap(e4)
                .Conv2DTranspose("deconv1", 8)
                .ConcatWith(e3, 3)
                .Conv2DTranspose("deconv2", 8)
                .ConcatWith(e2, 3)
                .Conv2DTranspose("deconv3", 4)
                .ConcatWith(e1, 3)
                .Conv2DTranspose("deconv4", 1, activation=tf.tanh)()
            )
    with tf1.variable_scope("discrim"):
        real_pred = discriminator(inputs, outputs)
        fake_pred = discriminator(inputs, fake)
    return [tf.identity(real_pred, "real_pred"), tf.identity(fake_pred, "fake_pred"), fake]


# ------------------------------------------ tools/golden/tf_compat_models.py's models, ported
def model_cam(image):
    """examples/Saliency/CAM-resnet.py at a small size: a classifier that ends in global
    average pooling, trained with sparse softmax cross entropy and weight decay; the top-1
    error (tf.nn.in_top_k) and the costs are moving summaries, and the class activation map
    of each image's label, from the linear layer's weights, is named 'cam'."""
    label = tf.constant([1, 0, 3, 2], dtype=tf.int32)
    image = image * 0.5 + 0.1
    with (
        argscope(Conv2D, use_bias=False, kernel_size=3),
        argscope([Conv2D, BatchNorm, GlobalAvgPooling], data_format="NHWC"),
    ):
        l = Conv2D("conv0", image, 8, strides=2, activation=BNReLU)
        l = Conv2D("conv1", l, 8, activation=BNReLU)
        convmaps = Conv2D("conv2", l, 6, activation=BNReLU)
    l = GlobalAvgPooling("gap", convmaps)
    logits = FullyConnected("linear", l, 4)

    cost = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=label, logits=logits)
    cost = tf.reduce_mean(cost, name="xentropy-loss")
    wrong = tf.cast(tf.logical_not(tf.nn.in_top_k(logits, label, 1)), tf.float32, name="wrong-top1")
    add_moving_summary(tf.reduce_mean(wrong, name="train-error-top1"))
    wd_cost = regularize_cost(".*/W", l2_regularizer(1e-2), name="wd_cost")
    total_cost = tf.add_n([cost, wd_cost], name="cost")
    add_moving_summary(cost, wd_cost, total_cost)

    with tf.variable_scope("linear", reuse=True):
        w = tf.get_variable("W")
    weights = tf.gather(tf.transpose(w), label)
    cam = tf.reduce_sum(convmaps * tf.reshape(weights, [-1, 1, 1, 6]), 3, name="cam")
    return [total_cost, wrong, cam]


def model_image2image(image):
    """examples/GAN/CycleGAN.py's generator at a small size: reflect-padded VALID
    convolutions with InstanceNorm, a residual block, upsampling by
    tf.layers.conv2d_transpose and by nearest-neighbour resizing, merged with tf.concat,
    and the input and output side by side as 'viz' (tf.concat's positional name)."""

    def conv_in_relu(name, x, ch, kernel=3, stride=1):
        pad = kernel // 2
        x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        x = Conv2D(name, x, ch, kernel, strides=stride, padding="VALID")
        return tf.nn.relu(InstanceNorm(name + "_in", x))

    with tf.variable_scope("gen"):
        l = conv_in_relu("conv0", image, 4)
        l = Conv2D("down", l, 8, 3, strides=2, padding="SAME", activation=tf.nn.relu)
        with tf.variable_scope("res"):
            shortcut = l
            r = tf.pad(l, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
            r = InstanceNorm("inorm", Conv2D("conv", r, 8, 3, padding="VALID"))
            l = tf.nn.relu(shortcut + r, name="out")
        up = tf.layers.conv2d_transpose(
            l, 4, 3, strides=2, padding="same", activation=tf.nn.relu, name="deconv"
        )
        near = tf.image.resize_nearest_neighbor(l, [8, 8])
        l = tf.concat([up, near], 3, name="merged")
        l = tf.pad(l, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
        fake = tf.tanh(Conv2D("out", l, 3, 3, padding="VALID"), name="fake")
    viz = tf.concat([image, fake], 2, "viz")
    recon = tf.reduce_mean(tf.abs(fake - image), name="recon_loss")
    return [fake, recon, viz]


@auto_reuse_variable_scope
def embed(x, nfeatures=4):
    l = FullyConnected("fc1", x, 16, activation=tf.nn.relu)
    l = FullyConnected("fc2", l, nfeatures)
    return tf.nn.l2_normalize(l, 1, name="emb")


def model_embedding(x):
    """examples/SimilarityLearning at a small size: an auto-reused embedding network (L2
    normalized) on two views of a batch, a triplet loss on rows picked by tf.gather, a
    contrastive loss, and the similarity matrix of the two views."""
    emb = embed(x)
    other = embed(x * 0.5 + 0.2)
    anchor = tf.gather(emb, [0, 1])
    positive = tf.gather(emb, [2, 3])
    negative = tf.gather(other, [4, 5])
    pos_dist = tf.reduce_sum(tf.square(anchor - positive), 1, keep_dims=True)
    neg_dist = tf.reduce_sum(tf.square(anchor - negative), 1, keep_dims=True)
    triplet = tf.reduce_mean(tf.maximum(0.0, pos_dist - neg_dist + 0.5), name="triplet_loss")

    same = tf.constant([1.0, 0.0])
    dist = tf.sqrt(tf.reduce_sum(tf.squared_difference(anchor, negative), 1) + 1e-10)
    margin_dist = tf.maximum(0.8 - dist, 0.0)
    contrastive = tf.reduce_mean(
        same * tf.square(dist) + (1.0 - same) * tf.square(margin_dist), name="contrastive_loss"
    )
    add_moving_summary(triplet, contrastive)
    similarity = tf.matmul(emb, other, transpose_b=True, name="similarity")
    return [triplet, contrastive, similarity]


def model_dqn(state):
    """examples/DeepQNetwork at a small size (Double DQN): the Q network on the state, the
    same network reused on the next state to choose the action, a frozen target network in its
    own scope (freeze_variables: not trainable, gradients stopped), tf.one_hot, tf.argmax,
    tf.stop_gradient and TF1's Huber loss."""
    num_actions = 3
    action = tf.constant([0, 2, 1, 2])
    reward = tf.constant([1.0, 0.0, -1.0, 0.5])
    is_over = tf.constant([False, False, True, False])
    next_state = tf.clip_by_value(state * 0.9 + 0.1, -1.0, 1.0)

    def get_dqn_prediction(image):
        image = image / 2.0
        with argscope(Conv2D, activation=tf.nn.relu, kernel_size=3):
            l = Conv2D("conv0", image, 4, strides=2)
            l = Conv2D("conv1", l, 8)
        l = FullyConnected("fc0", l, 16, activation=tf.nn.relu)
        q = FullyConnected("fct", l, num_actions)
        return tf.identity(q, name="Qvalue")

    predict_value = get_dqn_prediction(state)
    action_onehot = tf.one_hot(action, num_actions, 1.0, 0.0)
    pred_action_value = tf.reduce_sum(predict_value * action_onehot, 1)
    max_pred_reward = tf.reduce_mean(tf.reduce_max(predict_value, 1), name="predict_reward")
    add_moving_summary(max_pred_reward)

    with tf.variable_scope("target"), freeze_variables(skip_collection=True):
        target_q = get_dqn_prediction(next_state)
    with tf.variable_scope(tf.get_variable_scope(), reuse=True):
        next_predict_value = get_dqn_prediction(next_state)
    greedy_choice = tf.argmax(next_predict_value, 1)
    predict_onehot = tf.one_hot(greedy_choice, num_actions, 1.0, 0.0)
    best_v = tf.reduce_sum(target_q * predict_onehot, 1)
    target = reward + (1.0 - tf.cast(is_over, tf.float32)) * 0.99 * tf.stop_gradient(best_v)
    cost = tf.losses.huber_loss(target, pred_action_value)
    return [tf.identity(cost, name="cost"), predict_value]


def class_balanced_sigmoid_cross_entropy(logits, label, name="cross_entropy_loss"):
    """HED's loss: each pixel's sigmoid cross entropy, the edge pixels weighted up by the
    share of non-edge pixels; 0 when the map has no edge."""
    with tf.name_scope("class_balanced_sigmoid_cross_entropy"):
        y = tf.cast(label, tf.float32)
        count_neg = tf.reduce_sum(1.0 - y)
        count_pos = tf.reduce_sum(y)
        beta = count_neg / (count_neg + count_pos)
        pos_weight = beta / (1 - beta)
        cost = tf.nn.weighted_cross_entropy_with_logits(
            logits=logits, targets=y, pos_weight=pos_weight
        )
        cost = tf.reduce_mean(cost * (1 - beta))
        zero = tf.equal(count_pos, 0.0)
    return tf.where(zero, 0.0, cost, name=name)


def model_hed(image):
    """examples/HED at a small size: side outputs of three stages, upsampled to the input's
    size by tf.image.resize_bilinear (sizes from tf.shape), fused by a 1x1 convolution; each
    trained with a class-balanced sigmoid cross entropy against an edge map; the fused map's
    pixel error and the costs are moving summaries."""
    edgemap = tf.cast(tf.greater(tf.reduce_mean(image, 3, keep_dims=True), 0.25), tf.int32)

    def side_branch(name, l, up):
        with tf.variable_scope(name):
            l = Conv2D("convfc", l, 1, kernel_size=1, activation=tf.identity)
            if up > 1:
                shape = tf.shape(l)
                l = tf.image.resize_bilinear(l, [shape[1] * up, shape[2] * up], align_corners=True)
            return l

    with argscope(Conv2D, kernel_size=3, activation=tf.nn.relu):
        l = Conv2D("conv1_1", image, 4)
        b1 = side_branch("branch1", l, 1)
        l = MaxPooling("pool1", l, 2)
        l = Conv2D("conv2_1", l, 6)
        b2 = side_branch("branch2", l, 2)
        l = MaxPooling("pool2", l, 2)
        l = Conv2D("conv3_1", l, 8)
        b3 = side_branch("branch3", l, 4)
    fused = Conv2D(
        "convfcweight",
        tf.concat([b1, b2, b3], 3),
        1,
        kernel_size=1,
        use_bias=False,
        kernel_initializer=tf.constant_initializer(0.2),
        activation=tf.identity,
    )
    costs = []
    for idx, b in enumerate([b1, b2, b3, fused]):
        tf.nn.sigmoid(b, name=f"output{idx + 1}")
        costs.append(class_balanced_sigmoid_cross_entropy(b, edgemap, name=f"xentropy{idx + 1}"))
    output = tf.nn.sigmoid(fused, name="output")
    prediction = tf.cast(tf.greater(output, 0.5), tf.int32, name="prediction")
    wrong = tf.cast(tf.not_equal(prediction, edgemap), tf.float32)
    wrong = tf.reduce_mean(wrong, name="train_error")
    total_cost = tf.add_n(costs, name="cost")
    add_moving_summary(wrong, total_cost, *costs)
    return [total_cost, output]


def bilinear_sample(img, coords):
    """``img`` [N, H, W, C] sampled bilinearly at ``coords`` [N, h, w, 2] (y, x in pixels),
    clamped to the image."""
    shape = tf.shape(img)
    max_coor = tf.cast(tf.stack([shape[1] - 1, shape[2] - 1]), tf.float32)
    coords = tf.clip_by_value(coords, 0.0, max_coor)
    lower = tf.floor(coords)
    upper = tf.minimum(lower + 1.0, max_coor)
    frac = coords - lower
    ly, lx = tf.split(tf.cast(lower, tf.int32), 2, 3)
    uy, ux = tf.split(tf.cast(upper, tf.int32), 2, 3)
    fy, fx = tf.split(frac, 2, 3)

    out = tf.shape(coords)
    batch_index = tf.reshape(tf.range(shape[0]), [-1, 1, 1, 1])
    batch_index = tf.tile(batch_index, [1, out[1], out[2], 1])

    def pixel(y, x):
        return tf.gather_nd(img, tf.concat([batch_index, y, x], 3))

    return tf.add_n(
        [
            pixel(ly, lx) * (1.0 - fy) * (1.0 - fx),
            pixel(ly, ux) * (1.0 - fy) * fx,
            pixel(uy, lx) * fy * (1.0 - fx),
            pixel(uy, ux) * fy * fx,
        ],
        name="sampled",
    )


def model_spatial_transformer(image):
    """examples/SpatialTransformer at a small size: a localization net predicts an affine
    transform (initialized to the identity), a sampling grid from tf.meshgrid and tf.linspace
    is mapped through it (tf.matmul), the image is sampled bilinearly (tf.gather_nd) and the
    result classified; cost and accuracy are moving summaries."""
    out_h, out_w = 6, 6
    with tf.variable_scope("loc"):
        l = Conv2D("conv0", image, 4, 3, strides=2, activation=tf.nn.relu)
        l = FullyConnected("fc0", l, 16, activation=tf.nn.relu)
        theta = FullyConnected(
            "fc_affine",
            l,
            6,
            kernel_initializer=tf.zeros_initializer(),
            bias_initializer=tf.constant_initializer([1, 0, 0, 0, 1, 0]),
        )
    theta = tf.reshape(theta, [-1, 2, 3], name="affine")
    ys, xs = tf.meshgrid(
        tf.linspace(-1.0, 1.0, out_h), tf.linspace(-1.0, 1.0, out_w), indexing="ij"
    )
    grid = tf.stack([ys, xs, tf.ones_like(xs)], axis=2)
    grid = tf.tile(tf.reshape(grid, [1, out_h * out_w, 3]), [tf.shape(image)[0], 1, 1])
    coords = tf.reshape(tf.matmul(grid, theta, transpose_b=True), [-1, out_h, out_w, 2])
    shape = tf.shape(image)
    half_size = tf.cast(tf.stack([shape[1] - 1, shape[2] - 1]), tf.float32) / 2.0
    sampled = bilinear_sample(image, (coords + 1.0) * half_size)

    l = Conv2D("conv1", sampled, 6, 3, activation=tf.nn.relu)
    logits = FullyConnected("fct", l, 3)
    label = tf.constant([2, 0])
    cost = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=label, logits=logits)
    cost = tf.reduce_mean(cost, name="cost")
    correct = tf.equal(tf.argmax(logits, 1, output_type=tf.int32), label)
    accuracy = tf.reduce_mean(tf.cast(correct, tf.float32), name="accuracy")
    add_moving_summary(cost, accuracy)
    return [cost, sampled]


def get_quantizers(bit_w, bit_a):
    """DoReFa-Net's weight and activation quantizers: rounding to ``2 ** k - 1`` levels with a
    straight-through gradient (tf.custom_gradient)."""

    def quantize(x, k):
        levels = float(2**k - 1)

        @tf.custom_gradient
        def _quantize(x):
            return tf.round(x * levels) / levels, lambda dy: dy

        return _quantize(x)

    def fw(x):
        x = tf.tanh(x)
        x = x / tf.reduce_max(tf.abs(x)) * 0.5 + 0.5
        return 2 * quantize(x, bit_w) - 1

    def fa(x):
        return quantize(x, bit_a)

    return fw, fa


def model_dorefa(image):
    """examples/DoReFa-Net at a small size: the weights of every layer but the first and the
    last quantized through remap_variables (chosen by v.op.name), activations clipped to [0, 1]
    and quantized, BatchNorm between."""
    fw, fa = get_quantizers(2, 3)

    def quantized_weights(v):
        name = v.op.name
        if not name.endswith("/W") or "conv0" in name or "fct" in name:
            return v
        return fw(v)

    def activate(x):
        return fa(tf.clip_by_value(x, 0.0, 1.0))

    with remap_variables(quantized_weights), argscope(Conv2D, kernel_size=3, use_bias=False):
        l = Conv2D("conv0", image, 4)
        l = activate(BatchNorm("bn0", l))
        l = Conv2D("conv1", l, 6)
        l = MaxPooling("pool1", l, 2)
        l = activate(BatchNorm("bn1", l))
        l = Conv2D("conv2", l, 8, padding="VALID")
        l = activate(BatchNorm("bn2", l))
        logits = FullyConnected("fct", l, 4)
    return [tf.identity(logits, name="logits")]


def model_began(image):
    """examples/GAN/BEGAN.py at a small size: an autoencoder discriminator whose decoder
    upsamples by tf.image.resize_nearest_neighbor(align_corners=True), called on real and
    generated images; the equilibrium weight k_t a non-trainable variable updated with
    tf.assign after the losses read it, and the convergence measure a moving summary."""
    gamma, lambda_k = 0.5, 0.05
    z = tf.reshape(image, [tf.shape(image)[0], -1])[:, :8]

    def decoder(h):
        l = FullyConnected("fc", h, 2 * 2 * 4, activation=tf.identity)
        l = tf.reshape(l, [-1, 2, 2, 4])
        with argscope(Conv2D, kernel_size=3, activation=tf.nn.elu):
            l = Conv2D("conv0", l, 4)
            l = tf.image.resize_nearest_neighbor(l, [4, 4], align_corners=True)
            l = Conv2D("conv1", l, 4)
            l = tf.image.resize_nearest_neighbor(l, [7, 7], align_corners=True)
            return Conv2D("conv_out", l, 1, activation=tf.identity)

    def encoder(imgs):
        with argscope(Conv2D, kernel_size=3, activation=tf.nn.elu):
            l = Conv2D("conv0", imgs, 4)
            l = Conv2D("conv1", l, 4, strides=2)
            l = Conv2D("conv2", l, 4, strides=2)
        return FullyConnected("fc", l, 8, activation=tf.identity)

    @auto_reuse_variable_scope
    def autoencoder(imgs):
        with tf.variable_scope("enc"):
            h = encoder(imgs)
        with tf.variable_scope("dec"):
            return decoder(h)

    with tf.variable_scope("gen"):
        fake = tf.tanh(decoder(z), name="fake")
    with tf.variable_scope("discrim"):
        recon_pos = autoencoder(image)
        recon_neg = autoencoder(fake)
    loss_pos = tf.reduce_mean(tf.abs(recon_pos - image), name="loss_pos")
    loss_neg = tf.reduce_mean(tf.abs(recon_neg - fake), name="loss_neg")
    kt = tf.get_variable("kt", dtype=tf.float32, initializer=0.0, trainable=False)
    d_loss = tf.subtract(loss_pos, kt * loss_neg, name="d_loss")
    g_loss = tf.identity(loss_neg, name="g_loss")
    diff = gamma * loss_pos - loss_neg
    with tf.control_dependencies([d_loss]):
        update_k = tf.assign(kt, tf.clip_by_value(kt + lambda_k * diff, 0.0, 1.0), name="update_k")
    with tf.control_dependencies([update_k]):
        measure = tf.add(loss_pos, tf.abs(diff), name="measure")
    tf.summary.scalar("kt", update_k)
    add_moving_summary(loss_pos, loss_neg, measure)
    return [d_loss, g_loss, measure]


def model_wgan_gp(image):
    """examples/GAN/Improved-WGAN.py at a small size: a critic without BatchNorm on real and
    generated images, and the gradient penalty: tf.gradients of the critic at points between
    them (fixed mixing weights here, where the example draws them at random)."""
    z = tf.reshape(image, [tf.shape(image)[0], -1])[:, :6]

    @auto_reuse_variable_scope
    def critic(imgs):
        with argscope(Conv2D, kernel_size=3, strides=2, activation=tf.nn.leaky_relu):
            l = Conv2D("conv0", imgs, 4)
            l = Conv2D("conv1", l, 8)
        return tf.reshape(FullyConnected("fct", l, 1), [-1])

    with tf.variable_scope("gen"):
        l = FullyConnected("fc0", z, 4 * 4 * 4, activation=tf.nn.relu)
        l = tf.reshape(l, [-1, 4, 4, 4])
        fake = tf.tanh(Conv2DTranspose("deconv", l, 1, 3, strides=2), name="fake")
    with tf.variable_scope("discrim"):
        real_score = critic(image)
        fake_score = critic(fake)
        alpha = tf.reshape(tf.linspace(0.2, 0.8, tf.shape(image)[0]), [-1, 1, 1, 1])
        interp = image + alpha * (fake - image)
        interp_score = critic(interp)
    gradients = tf.gradients(interp_score, [interp])[0]
    gradients = tf.sqrt(tf.reduce_sum(tf.square(gradients), [1, 2, 3]))
    gradient_penalty = tf.reduce_mean(tf.square(gradients - 1), name="gradient_penalty")
    d_loss = tf.subtract(tf.reduce_mean(fake_score), tf.reduce_mean(real_score), name="d_loss_wgan")
    d_loss = tf.add(d_loss, 10 * gradient_penalty, name="d_loss")
    g_loss = tf.negative(tf.reduce_mean(fake_score), name="g_loss")
    add_moving_summary(d_loss, g_loss, gradient_penalty)
    return [d_loss, g_loss]


def channel_shuffle(l, group):
    in_shape = l.get_shape().as_list()
    in_channel = in_shape[3]
    l = tf.reshape(l, [-1, *in_shape[1:3], group, in_channel // group])
    l = tf.transpose(l, [0, 1, 2, 4, 3])
    return tf.reshape(l, [-1, *in_shape[1:3], in_channel])


def model_shufflenet(image):
    """examples/ImageNetModels/shufflenet.py at a small size: grouped 1x1 convolutions as
    tf.split / Conv2D / tf.concat, a channel shuffle from get_shape().as_list(), a depthwise
    convolution registered as a layer named DepthConv as the example does (with its own
    variable), a shortcut by AvgPooling; then a manual BatchNorm (tf.nn.moments,
    tf.nn.batch_normalization) and local response normalization."""
    group = 2

    @layer_register(log_shape=True)
    def DepthConv(x, out_channel, kernel_shape, padding="SAME", stride=1, W_init=None):
        """A depthwise convolution as ShuffleNet's example registers it: its own ``W`` from
        tf.get_variable, tf.nn.depthwise_conv2d, ``out_channel`` a multiple of the input's."""
        in_channel = x.get_shape().as_list()[3]
        channel_mult = out_channel // in_channel
        if W_init is None:
            W_init = tf.variance_scaling_initializer(2.0)
        kernel_shape = [kernel_shape, kernel_shape]
        W = tf.get_variable("W", [*kernel_shape, in_channel, channel_mult], initializer=W_init)
        conv = tf.nn.depthwise_conv2d(x, W, [1, stride, stride, 1], padding=padding)
        return tf.identity(conv, name="output")

    def group_conv(name, l, out_channel):
        with tf.variable_scope(name):
            parts = tf.split(l, group, axis=3)
            convs = [Conv2D(f"g{i}", part, out_channel // group, 1) for i, part in enumerate(parts)]
            return tf.concat(convs, 3)

    def shufflenet_unit(l, out_channel, stride):
        shortcut = l
        mid_channel = out_channel // 4
        l = group_conv("gconv1", l, mid_channel)
        l = BNReLU(l, name="bn1")
        l = channel_shuffle(l, group)
        l = DepthConv("dconv", l, mid_channel, 3, stride=stride)
        l = BatchNorm("dconv_bn", l)
        l = group_conv("gconv2", l, out_channel if stride == 1 else out_channel - 4)
        l = BatchNorm("gconv2_bn", l)
        if stride == 1:
            return tf.nn.relu(shortcut + l)
        shortcut = AvgPooling("avgpool", shortcut, 3, 2, padding="SAME")
        return tf.concat([shortcut, tf.nn.relu(l)], 3)

    with argscope(Conv2D, use_bias=False):
        l = Conv2D("conv1", image, 4, 3, strides=1, activation=BNReLU)
        with tf.variable_scope("group0"):
            with tf.variable_scope("block0"):
                l = shufflenet_unit(l, 8, 2)
            with tf.variable_scope("block1"):
                l = shufflenet_unit(l, 8, 1)
    mean, var = tf.nn.moments(l, [0, 1, 2])
    with tf.variable_scope("final_bn"):
        beta = tf.get_variable("beta", [8], initializer=tf.zeros_initializer())
        gamma = tf.get_variable("gamma", [8], initializer=tf.ones_initializer())
    l = tf.nn.batch_normalization(l, mean, var, beta, gamma, 1e-3, name="final_bn_out")
    l = tf.nn.lrn(l, depth_radius=2, bias=1.0, alpha=1e-2, beta=0.75, name="lrn")
    l = GlobalAvgPooling("gap", l)
    return [FullyConnected("linear", l, 5)]


# ------------------------------------------------------------------------------- the checks
PORTS = {
    # tools/golden/generate.py's (tests/test_golden_models.py replays them with the hand ports)
    "model_tutorial_infer": model_tutorial,
    "model_reuse": model_reuse,
    "model_regularizers_train": model_regularizers,
    "model_maxout": model_maxout,
    "model_renorm_2d_train": model_renorm_2d,
    "model_generator_train": model_generator,
    "model_fpn_rpn_head_train": model_fpn_rpn_head,
    "model_discrim_twice": model_discrim_twice,
    "model_dcgan_train": model_dcgan,
    "model_pix2pix_train": model_pix2pix,
    # tools/golden/tf_compat_models.py's
    "compat_cam_train": model_cam,
    "compat_image2image_train": model_image2image,
    "compat_embedding_train": model_embedding,
    "compat_dqn_train": model_dqn,
    "compat_hed_train": model_hed,
    "compat_spatial_transformer_train": model_spatial_transformer,
    "compat_dorefa_train": model_dorefa,
    "compat_began_train": model_began,
    "compat_wgan_gp_train": model_wgan_gp,
    "compat_shufflenet_train": model_shufflenet,
}
FIXTURES = {fx.id: fx for fid in PORTS for fx in fixtures(f"{fid}.npz")}


def as_summaries(fx: Fixture) -> Fixture:
    """The fixture with tensorpack's add_moving_summary averages as captured summaries.

    Tensorpack keeps each average as a variable ``EMA/<name>`` beside ``EMA/<name>/biased``
    and ``.../local_step``; tpflax keeps the latter two as state and records the average
    (derived from them) as the summary ``summary:scalar/<name>-summary``, so the fixture's
    ``EMA/<name>`` after the step is compared with that capture."""
    averages = {
        k.split("/", 1)[1]
        for k in fx.data
        if k.startswith("state/EMA/") and f"{k}/biased" in fx.data
    }
    out = copy.copy(fx)
    out.data = {k: v for k, v in fx.data.items() if k.split("/", 1)[-1] not in averages}
    for name in averages:
        tag = name[len("EMA/") :]
        out.data[f"capture/summary:scalar/{tag}-summary"] = fx.data[f"state/{name}"]
    return out


def test_every_port_has_its_fixture() -> None:
    assert sorted(FIXTURES) == sorted(PORTS)


@pytest.mark.parametrize("fid", sorted(PORTS))
def test_port_matches_tensorflow(fid: str) -> None:
    """Variable names, outputs, gradients, state after one step (BatchNorm's EMA, the moving
    summaries) and the tensors captured by TensorFlow name, against the fixture its
    TensorFlow original wrote."""
    check_fixture(as_summaries(FIXTURES[fid]), PORTS[fid])


def test_every_moving_summary_is_compared() -> None:
    """The tensors each model gives add_moving_summary, all among the compared captures."""
    summaries = {
        fid: sorted(k for k in as_summaries(fx).data if k.startswith("capture/summary:"))
        for fid, fx in FIXTURES.items()
        if fid.startswith("compat_")
    }
    count = {fid: len(names) for fid, names in summaries.items()}
    assert count == {
        "compat_cam_train": 4,
        "compat_image2image_train": 0,
        "compat_embedding_train": 2,
        "compat_dqn_train": 1,
        "compat_hed_train": 6,
        "compat_spatial_transformer_train": 2,
        "compat_dorefa_train": 0,
        "compat_began_train": 3,
        "compat_wgan_gp_train": 3,
        "compat_shufflenet_train": 0,
    }
    assert "capture/summary:scalar/train-error-top1-summary" in summaries["compat_cam_train"]
