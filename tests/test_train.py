"""tp.train: the compiled step equals a hand-written optax step, regularizers, frozen variables,
tp.linen models, donation, eval mode, checkpoints (keep last N, best by a metric)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import tpflax as tp


def net(image, label):
    with tp.argscope(tp.Conv2D, kernel_size=3, activation=tp.BNReLU):
        logits = (
            tp.LinearWrap(image)
            .Conv2D("conv0", 4)
            .MaxPooling("pool0", 2)
            .FullyConnected("fc0", 8, kernel_regularizer=tp.l2_regularizer(0.1))
            .Dropout("drop", rate=0.5)
            .FullyConnected("linear", 3)()
        )
    cost = optax.softmax_cross_entropy_with_integer_labels(logits, label).mean()
    accuracy = jnp.mean(jnp.argmax(logits, -1) == label)
    return cost, {"accuracy": accuracy}


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    x = rng.randn(8, 6, 6, 1).astype("float32")
    y = rng.randint(0, 3, 8).astype("int32")
    return jnp.asarray(x), jnp.asarray(y)


def _init(model, data):
    return model.init(jax.random.key(0), *data)


def test_step_equals_a_hand_written_optax_step(data) -> None:
    model = tp.transform(net)
    params, state = _init(model, data)
    tx = optax.sgd(0.1, momentum=0.9)  # (Adam would turn the float-noise gradient of the
    # bias before a BatchNorm into +-lr, with either sign)
    trainer = tp.train.Trainer(model, tx, regularize=[(".*/W", tp.l2_regularizer(1e-3))])
    ts = trainer.init(params, state, *data, rng=jax.random.key(7))
    new_ts, metrics = trainer.step(ts, *data)

    # the same step by hand: Dropout key fold_in(rng, step), cost + regularize_cost
    def loss(p):
        (cost, _), new_state = model.apply(
            p, state, *data, is_training=True, rng=jax.random.fold_in(jax.random.key(7), 0)
        )
        return cost + tp.regularize_cost(".*/W", tp.l2_regularizer(1e-3), params=p), (
            cost,
            new_state,
        )

    grads, (cost, new_state) = jax.jit(jax.grad(loss, has_aux=True))(params)
    updates, _ = tx.update(grads, tx.init(params), params)
    want = optax.apply_updates(params, updates)
    np.testing.assert_allclose(metrics["cost"], cost, rtol=1e-6)
    for got, expect in zip(jax.tree.leaves(new_ts.params), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-7)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), new_ts.state, new_state
    )
    assert int(new_ts.step) == 1
    assert set(metrics) == {"cost", "accuracy", "regularize_cost(.*/W)"}


def test_regularize_collection_adds_the_layers_losses(data) -> None:
    model = tp.transform(net)
    params, state = _init(model, data)
    plain = tp.train.Trainer(model, optax.sgd(0.0), donate=False)
    with_reg = tp.train.Trainer(model, optax.sgd(0.0), regularize_collection=True, donate=False)
    ts = plain.init(params, state, *data, rng=jax.random.key(0))
    with_reg.init(params, state, *data, rng=jax.random.key(0))
    _, m = with_reg.step(ts, *data)
    want = 0.5 * 0.1 * float(jnp.sum(jnp.square(params["fc0"]["W"])))  # l2_regularizer(0.1)
    np.testing.assert_allclose(m["regularize_cost_from_collection"], want, rtol=1e-5)


def test_frozen_variables_stay_untouched_under_weight_decay(data) -> None:
    def frozen_net(image, label):
        with tp.freeze_variables(stop_gradient=True):
            l = tp.Conv2D("backbone", image, 4, 3, activation=jax.nn.relu)
        with tp.freeze_variables(skip_collection=True):
            l = tp.Conv2D("neck", l, 4, 3)
        logits = tp.FullyConnected("head", l, 3)
        return optax.softmax_cross_entropy_with_integer_labels(logits, label).mean()

    model = tp.transform(frozen_net)
    params, state = _init(model, data)
    assert "neck" in state and "neck" not in params  # skip_collection: not trainable
    trainer = tp.train.Trainer(model, optax.adamw(0.1, weight_decay=0.5))
    ts = trainer.init(params, state, *data, rng=jax.random.key(0))
    mask = trainer.frozen_mask(params, state, *data)
    assert mask == {"backbone": {"W": True, "b": True}, "head": {"W": False, "b": False}}
    before = jax.tree.map(np.asarray, params)
    for _ in range(3):
        ts, _ = trainer.step(ts, *data)
    np.testing.assert_array_equal(ts.params["backbone"]["W"], before["backbone"]["W"])
    np.testing.assert_array_equal(ts.params["backbone"]["b"], before["backbone"]["b"])
    np.testing.assert_array_equal(ts.state["neck"]["W"], state["neck"]["W"])
    assert not np.allclose(ts.params["head"]["W"], before["head"]["W"])


def test_the_optimizer_is_bound_to_the_train_state_not_the_trainer(data) -> None:
    """A second init cannot change a first run: the frozen names live in the TrainState."""
    with_freeze = {"freeze": True}

    def switchable(image, label):
        if with_freeze["freeze"]:
            with tp.freeze_variables(stop_gradient=True):
                l = tp.Conv2D("backbone", image, 4, 3, activation=jax.nn.relu)
        else:
            l = tp.Conv2D("backbone", image, 4, 3, activation=jax.nn.relu)
        logits = tp.FullyConnected("head", l, 3)
        return optax.softmax_cross_entropy_with_integer_labels(logits, label).mean()

    model = tp.transform(switchable)
    params, state = _init(model, data)
    # weight decay moves every variable the optimizer is not masked for, gradient or not
    trainer = tp.train.Trainer(model, optax.adamw(0.1, weight_decay=0.5), donate=False)
    first = trainer.init(params, state, *data, rng=jax.random.key(0))
    assert first.frozen == {"backbone/W", "backbone/b"}
    with_freeze["freeze"] = False
    second = trainer.init(params, state, *data, rng=jax.random.key(0))
    assert second.frozen == frozenset()
    with_freeze["freeze"] = True  # the model as the first run traces it
    stepped, _ = trainer.step(first, *data)
    np.testing.assert_array_equal(stepped.params["backbone"]["W"], params["backbone"]["W"])
    assert not np.allclose(stepped.params["head"]["W"], params["head"]["W"])
    moved, _ = trainer.step(second, *data)  # the second run's optimizer masks nothing
    assert not np.allclose(moved.params["backbone"]["W"], params["backbone"]["W"])


def test_linen_model_trains_like_the_transformed_one(data) -> None:
    model = tp.transform(net)
    params, state = _init(model, data)
    module = tp.linen.Model(net)
    flat_p, flat_s = tp.checkpoint.flatten(params), tp.checkpoint.flatten(state)
    a = tp.train.Trainer(model, optax.sgd(0.1))
    b = tp.train.Trainer(module, optax.sgd(0.1))
    ts_a = a.init(params, state, *data, rng=jax.random.key(3))
    ts_b = b.init(flat_p, flat_s, *data, rng=jax.random.key(3))
    # Dropout keys differ between the two (linen's rng streams), so compare in a model
    # whose dropout is off: evaluation, then a step of each (costs only).
    ea, eb = a.evaluate(ts_a, *data), b.evaluate(ts_b, *data)
    np.testing.assert_allclose(ea["cost"], eb["cost"], rtol=1e-6)
    ts_b, mb = b.step(ts_b, *data)
    assert np.isfinite(mb["cost"]) and int(ts_b.step) == 1
    assert sorted(ts_b.state) == sorted(flat_s)


def test_donation_consumes_the_old_state(data) -> None:
    model = tp.transform(net)
    params, state = _init(model, data)
    trainer = tp.train.Trainer(model, optax.sgd(0.1))
    ts = trainer.init(params, state, *data, rng=jax.random.key(0))
    old_leaf = ts.params["linear"]["W"]
    ts, _ = trainer.step(ts, *data)
    assert old_leaf.is_deleted()
    assert not params["linear"]["W"].is_deleted()  # init copied the caller's arrays


def test_evaluate_uses_inference_mode(data) -> None:
    model = tp.transform(net)
    params, state = _init(model, data)
    trainer = tp.train.Trainer(model, optax.sgd(0.1))
    ts = trainer.init(params, state, *data, rng=jax.random.key(0))
    got = trainer.evaluate(ts, *data)
    (cost, metrics), _ = model.apply(params, state, *data, is_training=False)
    np.testing.assert_allclose(got["cost"], cost, rtol=1e-6)
    np.testing.assert_allclose(got["accuracy"], metrics["accuracy"])


def test_bad_cost_names_the_problem(data) -> None:
    model = tp.transform(lambda x, y: tp.FullyConnected("fc", x, 3))
    params, state = _init(model, data)
    trainer = tp.train.Trainer(model, optax.sgd(0.1))
    ts = trainer.init(params, state, *data, rng=jax.random.key(0))
    with pytest.raises(TypeError, match=r"tp.train: the cost must be a floating scalar"):
        trainer.step(ts, *data)
    with pytest.raises(TypeError, match=r"tp\.transform model or a flax\.linen module"):
        tp.train.Trainer(lambda x: x, optax.sgd(0.1))
    with pytest.raises(RuntimeError, match=r"call trainer.init"):
        tp.train.Trainer(model, optax.sgd(0.1)).step(ts, *data)


def test_loss_fn_gets_outputs_and_batch(data) -> None:
    model = tp.transform(lambda x: tp.FullyConnected("fc", x, 3))
    params, state = model.init(jax.random.key(0), data[0])

    def loss_fn(logits, image, label):
        return optax.softmax_cross_entropy_with_integer_labels(logits, label).mean()

    trainer = tp.train.Trainer(model, optax.sgd(0.1), loss_fn=loss_fn)
    ts = trainer.init(params, state, *data, rng=jax.random.key(0))
    _, m = trainer.step(ts, *data)
    (logits, _) = model.apply(params, state, data[0])
    np.testing.assert_allclose(m["cost"], loss_fn(logits, *data), rtol=1e-6)


def test_checkpoints_keep_last_n_and_the_best(tmp_path, data) -> None:
    model = tp.transform(net)
    params, state = _init(model, data)
    trainer = tp.train.Trainer(model, optax.sgd(0.1))
    ts = trainer.init(params, state, *data, rng=jax.random.key(0))
    ckpt = tp.train.Checkpoints(tmp_path, keep=2, best="accuracy", best_mode="max")
    accuracies = [0.2, 0.9, 0.5, 0.4]
    saved = {}
    for acc in accuracies:
        ts, _ = trainer.step(ts, *data)
        saved[int(ts.step)] = jax.tree.map(np.asarray, ts.params)
        ckpt.save(ts, {"accuracy": acc})
    ckpt.wait()
    assert ckpt.latest_step() == 4
    assert sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()) == [3, 4]
    assert ckpt.best_step() == 2
    best = ckpt.restore(ts, best=True)
    assert int(best.step) == 2
    jax.tree.map(np.testing.assert_array_equal, best.params, saved[2])
    latest = ckpt.restore(ts)
    jax.tree.map(np.testing.assert_array_equal, latest.opt_state, ts.opt_state)
    assert jax.random.key_data(latest.rng).tolist() == jax.random.key_data(ts.rng).tolist()
    ckpt.close()
    with pytest.raises(ValueError, match="best='accuracy' needs metrics"):
        tp.train.Checkpoints(tmp_path / "x", best="accuracy").save(ts)


def test_epoch_batches_is_a_function_of_the_step() -> None:
    x = np.arange(10)
    batch = tp.train.epoch_batches(x, x * 2, batch_size=3, seed=1)
    first = [batch(i)[0].tolist() for i in range(3)]
    again = tp.train.epoch_batches(x, x * 2, batch_size=3, seed=1)
    assert [again(i)[0].tolist() for i in (2, 0, 1)] == [first[2], first[0], first[1]]
    seen = [i for b in first for i in b]
    assert len(seen) == len(set(seen))  # no repeats within an epoch
    np.testing.assert_array_equal(batch(5)[1], batch(5)[0] * 2)
    assert batch(3)[0].tolist() != first[0]  # epoch 1 is reshuffled
    with pytest.raises(ValueError, match="arrays differ in length"):
        tp.train.epoch_batches(x, x[:3], batch_size=2)


def test_fit_shows_cost_accuracy_and_speed_only_on_request(data, capsys) -> None:
    model = tp.transform(net)
    params, state = _init(model, data)
    trainer = tp.train.Trainer(model, optax.sgd(0.1))
    ts = trainer.init(params, state, *data, rng=jax.random.key(0))
    ts, history = tp.train.fit(trainer, ts, lambda step: data, 3, progress=True)
    err = capsys.readouterr().err
    assert "cost=" in err and "accuracy=" in err and "img/s=" in err and "3/3" in err
    assert [h["step"] for h in history] == [0.0, 1.0, 2.0] and int(ts.step) == 3
    ts, history = tp.train.fit(trainer, ts, lambda step: data, 5)  # stderr is no terminal
    assert capsys.readouterr().err == "" and len(history) == 2
