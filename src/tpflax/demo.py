"""`make demo`: a model trained by real tensorpack, run, fine-tuned and exported by tpflax.

The embedded default (``tpflax/demo_data``, 260 KB): the 8x8 handwritten digits scikit-learn
ships (UCI, 1,797 images, CC BY 4.0), split 1,437 / 360, and the checkpoint tensorpack 0.11
wrote after training a tutorial-style convnet on them (``tools/golden/digits.py``). With
tpflax alone, the demo

1. loads tensorpack's TensorFlow checkpoint into the same model written in tpflax,
2. reports held-out accuracy beside tensorpack's own figure (and the largest logit gap),
3. fine-tunes with ``tp.train`` (progress bar on a terminal), checkpointing with orbax,
4. exports a tensorpack ``.npz`` and a TF checkpoint, reloads both, compares predictions,
5. prints a few held-out digits as ASCII art with their predictions.

Run: ``python -m tpflax.demo [--steps N] [--batch-size B] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import tpflax as tp

DATA = pathlib.Path(__file__).parent / "demo_data"
CHECKPOINT = "model-300"  # tensorpack's ModelSaver output, as tensorpack named it
SHADES = " .:-=+*#%@"


def digits_net(image: jax.Array) -> jax.Array:
    """tools/golden/digits.py's tensorpack model, line for line: logits for 8x8 digits."""
    image = image / 16.0
    with tp.argscope(tp.Conv2D, kernel_size=3, activation=tp.BNReLU):
        return (
            tp.LinearWrap(image)
            .Conv2D("conv0", 16)
            .Conv2D("conv1", 16)
            .MaxPooling("pool0", 2)
            .Conv2D("conv2", 32)
            .MaxPooling("pool1", 2)
            .FullyConnected("fc0", 64, activation=jax.nn.relu)
            .Dropout("drop", rate=0.3)
            .FullyConnected("linear", 10)()
        )


def cost(logits: jax.Array, image: jax.Array, label: jax.Array) -> tuple[jax.Array, dict]:
    """tensorpack's cost (mean sparse softmax cross-entropy), and accuracy."""
    del image
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, label).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == label)}


def load_data() -> dict[str, np.ndarray]:
    with np.load(DATA / "digits.npz") as data:
        return {k: data[k] for k in data.files}


def ascii_digit(image: np.ndarray) -> list[str]:
    """8 lines of 16 characters: the 0..16 grey levels as shades."""
    levels = np.clip(image[..., 0].astype(int) * (len(SHADES) - 1) // 16, 0, len(SHADES) - 1)
    return ["".join(SHADES[v] * 2 for v in row) for row in levels]


def _predict(model: tp.Transformed) -> Any:
    def predict(params: dict, state: dict, images: jax.Array) -> jax.Array:
        return model.apply(params, state, images)[0]

    return jax.jit(predict)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tpflax.demo",
        description="Loads a convnet trained by real tensorpack on the 8x8 digits, reports "
        "its held-out accuracy beside tensorpack's, fine-tunes it with tp.train, exports "
        "tensorpack .npz and TF checkpoint files, and reloads them.",
    )
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps (300)")
    parser.add_argument("--batch-size", type=int, default=64, help="training batch (64)")
    parser.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (3e-4)")
    parser.add_argument(
        "--out", default=None, help="output folder (default: a temporary one, removed after)"
    )
    parser.add_argument("--show", type=int, default=4, help="held-out digits to draw (4)")
    args = parser.parse_args(argv)
    if args.steps < 0 or args.batch_size < 1 or args.show < 0:
        parser.error("--steps and --show must be >= 0, --batch-size >= 1")
    if args.out is None:
        with tempfile.TemporaryDirectory() as folder:
            return _run(args, pathlib.Path(folder))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return _run(args, out)


def _run(args: argparse.Namespace, out: pathlib.Path) -> int:
    start = time.perf_counter()
    data = load_data()
    reference = json.loads((DATA / "tensorpack_digits.json").read_text())
    with np.load(DATA / "tensorpack_logits.npz") as f:
        tp_logits = f["logits"]
    x_test, y_test = data["test_images"].astype(np.float32), data["test_labels"]
    print(f"tpflax {tp.__version__} on JAX {jax.__version__} ({jax.default_backend()})")
    print(
        f"data: UCI/scikit-learn 8x8 digits, {len(data['train_labels'])} train, "
        f"{len(y_test)} held out"
    )

    # 1. tensorpack's checkpoint into the tpflax model
    model = tp.transform(digits_net)
    params, state = model.init(jax.random.key(0), x_test[:1])
    ckpt = DATA / CHECKPOINT
    params, state, report = tp.checkpoint.restore(str(ckpt), params, state, strict=True)
    skipped = len(report.skipped)
    print(
        f"\n1. loaded tensorpack's checkpoint {CHECKPOINT}: {len(report.loaded)} variables "
        f"({skipped} optimizer slots skipped, as tensorpack's SmartInit does)"
    )

    # 2. held-out accuracy, side by side
    predict = _predict(model)
    logits = np.asarray(predict(params, state, x_test))
    accuracy = float(np.mean(logits.argmax(1) == y_test))
    gap = float(np.max(np.abs(logits - tp_logits)))
    theirs = reference["held_out_accuracy"]
    print(
        f"2. held-out accuracy: tpflax {accuracy:.4f}, tensorpack {theirs:.4f} "
        f"(TF {reference['tensorflow']}); largest logit difference {gap:.1e}"
    )

    # 3. fine-tune with tp.train, checkpointing with orbax
    trainer = tp.train.Trainer(model, optax.adam(args.lr), loss_fn=cost)
    batches = tp.train.epoch_batches(
        data["train_images"].astype(np.float32),
        data["train_labels"],
        batch_size=min(args.batch_size, len(data["train_labels"])),
        seed=0,
    )
    ts = trainer.init(params, state, *batches(0), rng=jax.random.key(1))
    checkpoints = tp.train.Checkpoints(out / "checkpoints", keep=2, best="accuracy")

    def evaluate(ts: tp.train.TrainState) -> dict[str, Any]:
        return trainer.evaluate(ts, x_test, y_test)

    t0 = time.perf_counter()
    ts, history = tp.train.fit(
        trainer,
        ts,
        batches,
        args.steps,
        checkpoints=checkpoints,
        save_every=max(args.steps // 3, 1),
        evaluate=evaluate,
    )
    checkpoints.close()
    tuned = float(evaluate(ts)["accuracy"])
    if history:
        rate = len(history) * args.batch_size / (time.perf_counter() - t0)
        print(
            f"3. fine-tuned {len(history)} steps (Adam {args.lr:g}, batch {args.batch_size}): "
            f"cost {history[0]['cost']:.4f} -> {history[-1]['cost']:.4f}, "
            f"held-out accuracy {tuned:.4f}, {rate:.0f} images/s; orbax checkpoints: steps "
            f"{checkpoints.latest_step()} (latest), {checkpoints.best_step()} (best)"
        )
    else:
        print("3. fine-tuning skipped (--steps 0)")

    # 4. export as tensorpack files, reload, same predictions
    want = np.asarray(predict(ts.params, ts.state, x_test))
    npz = out / "digits-tpflax.npz"
    prefix = out / "tf" / f"model-{int(ts.step)}"
    tp.checkpoint.save_npz(str(npz), ts.params, ts.state)
    prefix.parent.mkdir(exist_ok=True)
    tp.checkpoint.save_tf_checkpoint(str(prefix), tp.checkpoint.flatten(ts.params, ts.state))
    same = []
    for path in (npz, prefix):
        fresh = model.init(jax.random.key(2), x_test[:1])
        p, s, _ = tp.checkpoint.restore(str(path), fresh[0], fresh[1], strict=True)
        same.append(bool(np.array_equal(np.asarray(predict(p, s, x_test)), want)))
    print(
        f"4. exported {npz.name} and TF checkpoint {prefix.name}; reloaded, identical "
        f"predictions: npz {same[0]}, TF checkpoint {same[1]}"
    )

    # 5. a few held-out digits
    if args.show:
        print("5. held-out digits, prediction (true label):")
        shown = range(min(args.show, len(y_test)))
        art = [ascii_digit(data["test_images"][i]) for i in shown]
        for row in range(8):
            print("   " + "   ".join(a[row] for a in art))
        labels = [f"{int(want[i].argmax())} ({int(y_test[i])})" for i in shown]
        print("   " + "   ".join(f"{t:^16}" for t in labels))
    print(f"\ndone in {time.perf_counter() - start:.1f} s")
    return 0 if all(same) else 1


if __name__ == "__main__":
    raise SystemExit(main())
