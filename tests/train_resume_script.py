"""Trains a small BatchNorm + Dropout convnet for STEPS steps with tp.train.fit, checkpointing
every 5 steps into argv[1], and appends `step cost.hex()` per step to argv[2]. Run by
tests/test_train_resume.py, which kills it with SIGKILL and runs it again."""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import tpflax as tp

STEPS = 30


def net(image, label):
    with tp.argscope(tp.Conv2D, kernel_size=3, activation=tp.BNReLU):
        logits = (
            tp.LinearWrap(image)
            .Conv2D("conv0", 8)
            .MaxPooling("pool0", 2)
            .Dropout("drop", rate=0.3)
            .FullyConnected("linear", 4)()
        )
    return optax.softmax_cross_entropy_with_integer_labels(logits, label).mean()


def main() -> None:
    ckpt_dir, log_path = sys.argv[1], sys.argv[2]
    rng = np.random.RandomState(0)
    images = rng.randn(64, 8, 8, 1).astype("float32")
    labels = rng.randint(0, 4, 64).astype("int32")
    data = tp.train.epoch_batches(images, labels, batch_size=16, seed=3)
    model = tp.transform(net)
    params, state = model.init(jax.random.key(0), *map(jnp.asarray, data(0)))
    trainer = tp.train.Trainer(model, optax.adam(1e-2))
    ts = trainer.init(params, state, *data(0), rng=jax.random.key(1))
    ckpt = tp.train.Checkpoints(ckpt_dir, keep=2)
    with open(log_path, "a") as log:

        def on_step(step: int, metrics: dict) -> None:
            log.write(f"{step} {metrics['cost'].hex()}\n")
            log.flush()
            os.fsync(log.fileno())

        ts, _ = tp.train.fit(
            trainer, ts, data, STEPS, checkpoints=ckpt, save_every=5, on_step=on_step
        )
    ckpt.close()
    flat = tp.checkpoint.flatten(ts.params, ts.state)
    np.savez(log_path + ".final.npz", **{k: np.asarray(v) for k, v in flat.items()})


if __name__ == "__main__":
    main()
