"""GAN training equivalence with real tensorpack: a small DCGAN (generator: FullyConnected,
BNReLU, two Conv2DTranspose with BNReLU; discriminator: two strided Conv2D, BatchNorm,
FullyConnected, called on real and on generated images under auto_reuse_variable_scope;
GAN.py's build_losses) trained by tensorpack's GANTrainer (10 steps) and
SeparateGANTrainer(d_period=1, g_period=2) (10 iterations, 19 sess.runs), TF's
AdamOptimizer(2e-4, beta1=0.5, epsilon=1e-3) as DCGAN.py, from the same weights and batches
(tools/golden/tf_training.py, fixtures gan and gan_separate). Here the same GANModelDesc
with tpflax.compat's imports, trained by tp.train.GANTrainer: per-run costs, the variables,
BatchNorm statistics and Adam slots (TF's names, ``optimize/beta1_power`` shared by both
updates) at the end and after 5 iterations, resumed from tensorpack's state and from a TF
checkpoint tpflax wrote.

Tolerance: float32, as tests/test_tf_training.py: the forward and backward passes differ from
TF's in summation order (~1e-7 relative per value) and Adam passes a gradient's relative
error into the step. Measured: costs within 1.6e-7 (gan) and 3.4e-7 (gan_separate) relative
at every run; variables, BatchNorm statistics and Adam slots after 5 and 10 iterations within
7.8e-7 of (own magnitude + the array's largest magnitude), except two kinds of values
explained at NOISE and RACY below. Bounds: costs 2e-6, variables 1e-5 (the issue's target is
1e-4).
"""

from __future__ import annotations

import os
import pathlib
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import GOLDEN_DIR

import tpflax as tp
from tpflax.compat import tf
from tpflax.compat.tensorpack import (
    BNReLU,
    Conv2D,
    Conv2DTranspose,
    FullyConnected,
    GANModelDesc,
    GANTrainer,
    LinearWrap,
    SeparateGANTrainer,
    argscope,
    auto_reuse_variable_scope,
)

tf1 = tf.compat.v1
BATCH, SIZE, ZDIM = 4, 8, 6


class Model(GANModelDesc):  # tools/golden/tf_training.py's GANNet, ported
    def inputs(self):
        return [
            tf.TensorSpec((BATCH, SIZE, SIZE, 2), tf.float32, "input"),
            tf.TensorSpec((BATCH, ZDIM), tf.float32, "z"),
        ]

    def generator(self, z):
        l = FullyConnected("fc0", z, 2 * 2 * 8, activation=tf.identity)
        l = tf.reshape(l, [-1, 2, 2, 8])
        l = BNReLU(l)
        with argscope(Conv2DTranspose, activation=BNReLU, kernel_size=4, strides=2):
            l = Conv2DTranspose("deconv1", l, 4)
            l = Conv2DTranspose("deconv2", l, 2, activation=tf.identity)
            l = tf.tanh(l, name="gen")
        return l

    @auto_reuse_variable_scope
    def discriminator(self, imgs):
        with argscope(Conv2D, kernel_size=4, strides=2):
            l = (
                LinearWrap(imgs)
                .Conv2D("conv0", 4, activation=tf.nn.leaky_relu)
                .Conv2D("conv1", 8)
                .BatchNorm("bn1")
                .tf.nn.leaky_relu()
                .FullyConnected("fct", 1)()
            )
        return l

    def build_graph(self, image_pos, z):
        image_pos = image_pos / 128.0 - 1
        with argscope(
            [Conv2D, Conv2DTranspose, FullyConnected],
            kernel_initializer=tf1.truncated_normal_initializer(stddev=0.02),
        ):
            with tf1.variable_scope("gen"):
                image_gen = self.generator(z)
            with tf1.variable_scope("discrim"):
                vecpos = self.discriminator(image_pos)
                vecneg = self.discriminator(image_gen)
        self.build_losses(vecpos, vecneg)
        self.collect_variables()

    def optimizer(self):  # DCGAN.py's (the golden's learning rate is the constant 2e-4)
        lr = tf1.get_variable("learning_rate", initializer=2e-4, trainable=False)
        return tf1.train.AdamOptimizer(lr, beta1=0.5, epsilon=1e-3)


@pytest.fixture(autouse=True, scope="module")
def tensorflow_broadcasting():
    """TF-style model code broadcasts ranks implicitly; the suite's conftest raises on it."""
    with jax.numpy_rank_promotion("allow"):
        yield


def _load(name):
    with np.load(GOLDEN_DIR / "tf_training" / f"{name}.npz") as z:
        return {"name": name, **{k: z[k] for k in z.files}}


def _prefixed(fx, prefix):
    return {k[len(prefix) :]: v for k, v in fx.items() if k.startswith(prefix)}


def _batch(fx, run):
    return jnp.asarray(fx[f"input/{run}"]), jnp.asarray(fx[f"z/{run}"])


def _error(got, want):
    got = np.asarray(got)
    return float(np.max(np.abs(got - want) / (np.abs(want) + np.abs(want).max())))


# Biases followed by BatchNorm: their true gradient is 0 (BatchNorm removes a per-channel
# bias), so their Adam slots hold float32 rounding noise in both frameworks (~1e-8 for `m`,
# ~1e-17 for `v`): checked to be noise-sized, not equal.
NOISE = ("gen/deconv1/b/Adam", "discrim/conv1/b/Adam")
# The reused discriminator's two BatchNorm EMA updates race in TF (UPDATE_OPS in GANTrainer,
# ema_update='internal' in SeparateGANTrainer), even with one thread per pool: five
# tensorpack runs of gan_separate differed there by up to 1.2e-2 (the committed one is
# 1.2e-2 from tpflax; three others matched tpflax's rule to 2.4e-7), and one of four
# GANTrainer runs (a resume in tensorpack) by 5e-3 (the committed fixture matches the rule to
# 2.4e-7); every other value was equal to 1 ulp. tpflax applies its deterministic rule (the
# deltas add; tp.BatchNorm's docstring), checked to 5e-2 (four times the largest spread).
RACY = ("discrim/bn1/mean/EMA", "discrim/bn1/variance/EMA")


def _variables(trainer, ts):
    got = {**tp.checkpoint.flatten(ts.params, ts.state), **trainer.tf_variables(ts)}
    return {k: v for k, v in got.items() if not k.startswith("EMA/")}  # local in tensorpack


def _check(got, fx, prefix="final/"):
    want = _prefixed(fx, prefix)
    assert sorted(got) == sorted(want)
    checked = []
    for k, v in want.items():
        if k.startswith(NOISE):
            bound = 1e-7 if k.endswith("/Adam") else 1e-14
            assert np.abs(v).max() < bound and np.abs(np.asarray(got[k])).max() < bound, k
        elif k in RACY:
            np.testing.assert_allclose(got[k], v, atol=5e-2, err_msg=k)
        else:
            checked.append((_error(got[k], v), k))
    worst = max(checked)
    assert worst[0] <= 1e-5, f"{worst[1]}: relative error {worst[0]:.2e}"
    return worst


CASES = {"gan": {}, "gan_separate": {"separate": True, "d_period": 1, "g_period": 2}}


def _start(trainer, fx, flat):
    """A TrainState from the model's variables in ``flat`` (the names ``init/`` holds), and
    add_moving_summary's EMA state at its initial zeros (local variables in tensorpack, not
    saved)."""
    batch = _batch(fx, 0)
    shapes = jax.eval_shape(
        lambda *b: trainer.model.init(jax.random.key(0), *b, is_training=True), *batch
    )
    names = set(_prefixed(fx, "init/"))

    def given(path, like):
        name = "/".join(k.key for k in path)
        if name in names:
            return jnp.asarray(flat[name])
        assert name.startswith("EMA/"), name
        return jnp.zeros(like.shape, like.dtype)

    params, state = (jax.tree_util.tree_map_with_path(given, t) for t in shapes)
    return trainer.init(params, state, *batch, rng=jax.random.key(0))


def _train(trainer, fx, ts, runs):
    costs, mid = [], None
    for run in runs:
        ts, metrics = trainer.step(ts, *_batch(fx, run))
        costs.append((float(metrics["g_loss"]), float(metrics["d_loss"])))
        if run + 1 == int(fx["mid_global_step"]):  # what a checkpoint written here holds
            mid = {k: np.asarray(v) for k, v in _variables(trainer, ts).items()}
    return ts, np.array(costs).T, mid


# the separate case compiles its own step (~10 s on two busy cores): make test-slow
PARAMS = ["gan", pytest.param("gan_separate", marks=pytest.mark.slow)]


def _compat_trainer(name, batches):
    if name == "gan":
        return GANTrainer(batches, Model())
    return SeparateGANTrainer(batches, Model(), d_period=1, g_period=2)


@pytest.fixture(scope="module")
def compat_trainers():
    """The compat trainers by fixture, one per module: their compiled steps are shared."""
    out = {}
    for name in CASES:
        fx = _load(name)
        out[name] = _compat_trainer(
            name, [_batch(fx, k) for k in range(int(fx["final_global_step"]))]
        )
    return out


@pytest.fixture(scope="module", params=PARAMS)
def case(request, compat_trainers):
    fx = _load(request.param)
    trainer = compat_trainers[request.param].trainer
    ts = _start(trainer, fx, _prefixed(fx, "init/"))
    runs = int(fx["final_global_step"])
    return fx, trainer, _train(trainer, fx, ts, range(runs))


def test_schedule_is_tensorpacks(case) -> None:
    """Which update each sess.run made in tensorpack (GANTrainer: its d_op, which runs g_op
    first; SeparateGANTrainer(1, 2): d, d, g, d, g, ...)."""
    fx, trainer, _ = case
    want = [str(op).rsplit("/", 1)[1] for op in fx["ops"]]
    got = [trainer.schedule(k) for k in range(len(want))]
    kinds = {"d_op": "g+d", "d_min": "d", "g_min": "g"}
    assert got == [kinds[op] for op in want]


def test_costs_follow_tensorpack(case) -> None:
    fx, _, (_, costs, _) = case
    np.testing.assert_allclose(costs[0], fx["g_loss"], rtol=2e-6)
    np.testing.assert_allclose(costs[1], fx["d_loss"], rtol=2e-6)


def test_final_variables_and_slots_follow_tensorpack(case) -> None:
    """Model variables, BatchNorm EMAs (the discriminator's updated by both of its calls),
    `<var>/Adam`, `<var>/Adam_1`, and the one shared `optimize/beta1_power`,
    `optimize/beta2_power` (0.5**21 after 10 GANTrainer steps: both updates advance it)."""
    fx, trainer, (ts, _, mid) = case
    _check(_variables(trainer, ts), fx)
    _check(mid, fx, "mid/")


def _resume(trainer, fx, flat):
    step = int(flat["global_step"]) if "global_step" in flat else int(fx["mid_global_step"])
    ts = trainer.load_tf_variables(_start(trainer, fx, flat), flat, step=step)
    assert int(ts.step) == step
    ts, costs, _ = _train(trainer, fx, ts, range(step, int(fx["final_global_step"])))
    np.testing.assert_allclose(costs[0], fx["g_loss"][step:], rtol=2e-6)
    np.testing.assert_allclose(costs[1], fx["d_loss"][step:], rtol=2e-6)
    _check(_variables(trainer, ts), fx)


def test_resumes_from_tensorpack_with_its_slots(case) -> None:
    """Tensorpack's variables after 5 iterations (model, BN statistics, both networks' Adam
    slots, `optimize/beta1_power`) loaded into a fresh TrainState: the remaining runs follow
    tensorpack's and end where it ended."""
    fx, trainer, _ = case
    _resume(trainer, fx, _prefixed(fx, "mid/"))


@pytest.mark.slow  # two_optimizers_advance_and_round_trip covers the names in make test
def test_a_tf_checkpoint_round_trip_resumes(case, tmp_path) -> None:
    """tpflax's state after 5 iterations written as a TF checkpoint under tensorpack's names
    (global_step int64), read back by tp.checkpoint.load: the resumed run ends at tensorpack's
    uninterrupted one."""
    fx, trainer, (_, _, mid) = case
    prefix = str(tmp_path / "model")
    step = np.int64(fx["mid_global_step"])
    tp.checkpoint.save_tf_checkpoint(prefix, {**mid, "global_step": step})
    _resume(trainer, fx, tp.checkpoint.load(prefix))


GOLDEN_PYTHON = pathlib.Path(__file__).parents[1] / ".venv-golden" / "bin" / "python"
GENERATOR = pathlib.Path(__file__).parents[1] / "tools" / "golden" / "tf_training.py"


@pytest.mark.tensorflow
def test_a_tpflax_checkpoint_resumes_in_tensorpack(case, tmp_path) -> None:
    """Tensorpack (SmartInit, its GAN trainer, TF's Adam; .venv-golden) resumes from the TF
    checkpoint tpflax wrote after 5 iterations: its remaining runs make the same updates, cost
    what its uninterrupted run's did and end at the same variables and slots."""
    if not GOLDEN_PYTHON.exists():
        pytest.skip(".venv-golden is absent (make golden creates it)")
    fx, _, (_, _, mid) = case
    prefix = str(tmp_path / "model")
    half = int(fx["mid_global_step"])
    tp.checkpoint.save_tf_checkpoint(prefix, {**mid, "global_step": np.int64(half)})
    out = tmp_path / "resumed.npz"
    command = [str(GOLDEN_PYTHON), str(GENERATOR), "--resume-from", prefix, "--case", fx["name"]]
    subprocess.run(
        [*command, "--out", str(out)],
        capture_output=True,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
        check=True,
        cwd=tmp_path,
    )
    with np.load(out) as z:
        resumed = {k: z[k] for k in z.files}
    assert int(resumed["global_step"]) == int(fx["final_global_step"])
    assert list(resumed["ops"]) == list(fx["ops"][half:])
    np.testing.assert_allclose(resumed["g_loss"], fx["g_loss"][half:], rtol=2e-6)
    np.testing.assert_allclose(resumed["d_loss"], fx["d_loss"][half:], rtol=2e-6)
    _check(_prefixed(resumed, "final/"), fx)


@pytest.mark.parametrize("name", PARAMS)
def test_compat_trainer_fits_and_resumes(name, compat_trainers, tmp_path) -> None:
    """GAN.py's trainer line as written (`GANTrainer(input, model).train_with_defaults(...)`,
    input a list of batches, session_init a dict) trains through tp.train.fit; a second call
    resumes from fit's orbax checkpoint (both networks' slots, the shared powers) and ends at
    tensorpack's final variables; the history holds both costs and the summaries."""
    fx = _load(name)
    runs, half = int(fx["final_global_step"]), int(fx["mid_global_step"])
    init = _prefixed(fx, "init/")
    compat = compat_trainers[name]
    ckpt = tp.train.Checkpoints(tmp_path / "ckpt", async_save=False)
    _, history = compat.train_with_defaults(
        steps_per_epoch=5, max_epoch=1, session_init=init, checkpoints=ckpt, progress=False
    )
    assert [h["step"] for h in history] == list(range(half))
    ts, rest = compat.train_with_defaults(
        steps_per_epoch=5, max_epoch=2, session_init=init, checkpoints=ckpt, progress=False
    )
    ckpt.close()
    assert [h["step"] for h in rest] == list(range(half, runs))
    np.testing.assert_allclose([h["g_loss"] for h in history + rest], fx["g_loss"], rtol=2e-6)
    np.testing.assert_allclose([h["d_loss"] for h in history + rest], fx["d_loss"], rtol=2e-6)
    assert {"GAN_loss/discrim/accuracy-summary", "GAN_loss/gen/loss-summary"} <= set(rest[-1])
    _check(_variables(compat.trainer, ts), fx)


def test_two_optimizers_tf_names() -> None:
    """With d_tx, each network has its own Adam: under TF's names the second one's powers are
    `optimize/beta1_power_1` (as the fixture's graph with two Adam objects names them)."""
    fx = _load("gan")
    tfo = tp.train.tf_optimizers
    trainer = tp.train.GANTrainer.from_model_desc(Model(), d_tx=tfo.AdamOptimizer(1e-3))
    ts = _start(trainer, fx, _prefixed(fx, "init/"))
    assert sorted(_variables(trainer, ts)) == sorted(map(str, fx["two_optimizers/names"]))


def _tiny(x, z):
    with tf1.variable_scope("gen"):
        fake = FullyConnected("fc", z, 2)
    with tf1.variable_scope("discrim"):
        d = auto_reuse_variable_scope(lambda t: FullyConnected("fc", t, 1))
        real_logit, fake_logit = d(x), d(fake)
    loss = tf.reduce_mean(tf.square(real_logit - fake_logit))
    return loss, -loss


def _init(trainer, model_fn=_tiny):
    x, z = jnp.ones((4, 2)), jnp.ones((4, 3))
    params, state = tp.transform(model_fn).init(jax.random.key(0), x, z)
    return trainer.init(params, state, x, z, rng=jax.random.key(0)), (x, z)


@pytest.mark.parametrize("separate", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_two_optimizers_advance_and_round_trip(separate) -> None:
    """Each optimizer's powers advance with its own updates (GANTrainer: one each per step;
    separate (1, 1): d, g, d, g), the shared one's with both; load_tf_variables reads back
    what tf_variables wrote."""
    tfo = tp.train.tf_optimizers
    two = tp.train.GANTrainer(
        tp.transform(_tiny),
        tfo.AdamOptimizer(1e-3, beta1=0.5),
        d_tx=tfo.AdamOptimizer(1e-3, beta1=0.9),
        separate=separate,
    )
    shared = tp.train.GANTrainer(
        tp.transform(_tiny), tfo.AdamOptimizer(1e-3, beta1=0.5), separate=separate
    )
    for trainer in (two, shared):
        ts, batch = _init(trainer)
        for _ in range(2):
            ts, _ = trainer.step(ts, *batch)
        names = {k: np.asarray(v) for k, v in trainer.tf_variables(ts).items()}
        if trainer is two and not separate:  # g's Adam created first, two updates each
            want = {"optimize/beta1_power": 0.5**3, "optimize/beta1_power_1": 0.9**3}
        elif trainer is two:  # d's Adam created first (d_min is built first); d, g
            want = {"optimize/beta1_power": 0.9**2, "optimize/beta1_power_1": 0.5**2}
        else:  # one Adam: four updates (GANTrainer) or two (separate)
            want = {"optimize/beta1_power": 0.5 ** (3 if separate else 5)}
        for name, value in want.items():
            np.testing.assert_allclose(names[name], value, rtol=1e-6)
        fresh, _ = _init(trainer)
        loaded = trainer.load_tf_variables(fresh, names, step=2)
        assert int(loaded.step) == 2
        for k, v in trainer.tf_variables(loaded).items():
            np.testing.assert_array_equal(v, names[k])


@pytest.mark.parametrize("separate", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_fit_resumes_two_optimizers_exactly(separate, tmp_path) -> None:
    """fit with Checkpoints: a run stopped after 3 steps and resumed (both optimizers'
    states, the step) ends bit for bit where an uninterrupted run of 6 steps ends."""
    tfo = tp.train.tf_optimizers
    trainer = tp.train.GANTrainer(
        tp.transform(_tiny),
        tfo.AdamOptimizer(1e-2, beta1=0.5),
        d_tx=tfo.RMSPropOptimizer(1e-2),
        separate=separate,
    )

    def data(step):
        return jnp.full((4, 2), 0.1 * step), jnp.full((4, 3), 1.0 - 0.1 * step)

    ts, _ = _init(trainer)
    whole, history = tp.train.fit(trainer, ts, data, 6, progress=False)
    ckpt = tp.train.Checkpoints(tmp_path, async_save=False)
    ts, _ = _init(trainer)
    tp.train.fit(trainer, ts, data, 3, checkpoints=ckpt, progress=False)
    ts, _ = _init(trainer)
    resumed, rest = tp.train.fit(trainer, ts, data, 6, checkpoints=ckpt, progress=False)
    ckpt.close()
    assert [h["step"] for h in rest] == [3.0, 4.0, 5.0]
    assert [h["d_loss"] for h in rest] == [h["d_loss"] for h in history[3:]]
    for tree in ("params", "state", "opt_state", "step"):
        got, want = getattr(resumed, tree), getattr(whole, tree)
        for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
            np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- bad input
def test_scope_that_matches_nothing() -> None:
    trainer = tp.train.GANTrainer(tp.transform(_tiny), optax.sgd(0.1), g_scope="generator")
    with pytest.raises(
        ValueError,
        match=r"g_scope='generator' matches no trainable variable.*"
        r"\['discrim', 'gen'\]",
    ):
        _init(trainer)


def test_model_must_return_two_costs() -> None:
    trainer = tp.train.GANTrainer(tp.transform(lambda x, z: _tiny(x, z)[0]), optax.sgd(0.1))
    with pytest.raises(
        TypeError, match=r"must return \(g_loss, d_loss\).*got an array of shape \(\) float32"
    ):
        _init(trainer)

    def vector_cost(x, z):
        g_loss, d_loss = _tiny(x, z)
        return jnp.ones(2) * g_loss, d_loss

    vector = tp.transform(vector_cost)
    with pytest.raises(
        TypeError, match=r"g_loss must be a floating scalar; got an array of shape \(2,\)"
    ):
        _init(tp.train.GANTrainer(vector, optax.sgd(0.1)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"d_period": 2}, r"d_period/g_period need separate=True"),
        ({"separate": True, "d_period": 2, "g_period": 3}, r"min\(d_period, g_period\) must"),
        ({"separate": True, "g_period": 0}, r"g_period must be an int >= 1; got 0"),
    ],
)
def test_bad_periods(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        tp.train.GANTrainer(tp.transform(_tiny), optax.sgd(0.1), **kwargs)


def test_model_desc_errors() -> None:
    class NoLosses(Model):
        def build_losses(self, logits_real, logits_fake):
            pass

    class NoScopes(Model):
        def collect_variables(self, g_scope="gen", d_scope="discrim"):
            pass

    fx = _load("gan")
    for desc, match in (
        (NoLosses(), r"build_graph must set self.g_loss and self.d_loss"),
        (NoScopes(), r"build_graph must call self.collect_variables\(\)"),
    ):
        trainer = tp.train.GANTrainer.from_model_desc(desc)
        with pytest.raises(TypeError, match=match):
            _start(trainer, fx, _prefixed(fx, "init/"))
    with pytest.raises(TypeError, match=r"model must be a tp.transform model"):
        tp.train.GANTrainer(lambda x: x, optax.sgd(0.1))
    with pytest.raises(TypeError, match=r"input must be data\(step\) -> batch or a non-empty"):
        GANTrainer([], Model())
    with pytest.raises(TypeError, match=r"callbacks are tensorpack callbacks, not supported"):
        GANTrainer([_batch(fx, 0)], Model()).train_with_defaults(
            steps_per_epoch=1, callbacks=["ModelSaver()"]
        )
    with pytest.raises(RuntimeError, match=r"call trainer.init\(...\) before step\(\)"):
        tp.train.GANTrainer(tp.transform(_tiny), optax.sgd(0.1)).step(None)


def test_gan_model_built_in_inference_gets_its_moving_summaries() -> None:
    """GAN.py's build_losses summarizes the costs with add_moving_summary, which makes its
    averages in training only: GANTrainer.init adds them to a state built in inference."""
    from tpflax.compat.tensorpack import add_moving_summary

    def model(z):
        with tf1.variable_scope("gen"):
            fake = FullyConnected("fc", z, 3)
        with tf1.variable_scope("discrim"):
            score = FullyConnected("fc", fake, 1)
        g_loss = tf.reduce_mean(tf.square(score - 1.0), name="g_loss")
        d_loss = tf.reduce_mean(tf.square(score), name="d_loss")
        add_moving_summary(g_loss, d_loss)
        return g_loss, d_loss

    trainer = tp.train.GANTrainer(tp.transform(model), tp.train.tf_optimizers.AdamOptimizer(0.1))
    z = jnp.ones((2, 4))
    params, state = trainer.model.init(jax.random.key(0), z)
    assert state == {}
    ts = trainer.init(params, state, z, rng=jax.random.key(1))
    assert sorted(ts.state["EMA"]) == ["d_loss", "g_loss"]
    ts, metrics = trainer.step(ts, z)
    assert "g_loss-summary" in metrics and "d_loss-summary" in metrics
