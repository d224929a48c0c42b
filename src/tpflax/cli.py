"""The ``tpflax`` command: inspect, convert and compare weight files; classify images.

Exit codes: 0 success (and, for ``diff``, no differences); 1 ``diff`` found differences;
2 bad input (a missing, truncated or corrupt file, an unknown format, bad arguments, an
existing output without ``--force``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from tpflax import checkpoint

EXIT_OK, EXIT_DIFFERENT, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse exits 2 too; keep its message short
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"tpflax: error: {message}\n")


DESCRIPTION = "Inspect, convert and compare tensorpack weight files; classify images."
EPILOG = (
    "exit codes: 0 success (diff: no differences), 1 diff found differences, "
    "2 bad input (missing or corrupt file, unknown format, bad arguments)"
)


def _format_rule() -> str:
    """How ``convert`` picks DST's format, from the table of formats."""
    rules = [f for f in checkpoint.FORMATS.values() if f.names_target is not None]
    rules += [f for f in checkpoint.FORMATS.values() if f.names_target is None]
    return "--format, else DST's name: " + "; ".join(f.target_rule for f in rules)


def _rows(flat: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "shape": list(flat[name].shape),
            "dtype": str(flat[name].dtype),
            "count": int(flat[name].size),
            "bytes": int(flat[name].nbytes),
            "training_only": checkpoint.is_training_name(name),
        }
        for name in sorted(flat)
    ]


def cmd_inspect(args: argparse.Namespace) -> int:
    kind = checkpoint.detect_format(args.file)
    flat = checkpoint.load(args.file)
    extras = checkpoint.FORMATS[kind].left_out(args.file)
    rows = _rows(flat)
    total = {"tensors": len(rows), "count": sum(r["count"] for r in rows)}
    total["bytes"] = sum(r["bytes"] for r in rows)
    if args.json:
        record = {"file": args.file, "format": kind, "tensors": rows, "total": total}
        if extras:
            record["not_listed"] = extras
        print(json.dumps(record))
        return EXIT_OK
    width = max([len(r["name"]) for r in rows] + [4])
    print(f"{'name':<{width}}  {'shape':<18} {'dtype':<9} {'count':>12}")
    for r in rows:
        mark = "  (training only)" if r["training_only"] else ""
        print(f"{r['name']:<{width}}  {r['shape']!s:<18} {r['dtype']:<9} {r['count']:>12}{mark}")
    print(
        f"{total['tensors']} tensors, {total['count']:,} values, {total['bytes'] / 2**20:.2f} MiB"
    )
    if extras:
        print(
            f"(the checkpoint also holds {', '.join(extras)}: training state, not listed; "
            "tp.checkpoint.restore_orbax reads it)"
        )
    return EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    flat = checkpoint.load(args.src)
    if args.model_only:
        flat = {k: v for k, v in flat.items() if not checkpoint.is_training_name(k)}
    fmt = checkpoint.FORMATS[args.format] if args.format else checkpoint.guess_format(args.dst)
    if fmt.exists(args.dst) and not args.force:
        raise FileExistsError(f"{args.dst} exists; pass --force to replace it")
    checkpoint.save(args.dst, flat, fmt.name, overwrite=args.force)
    print(f"wrote {len(flat)} tensors to {args.dst} ({fmt.name})")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    a, b = checkpoint.load(args.a), checkpoint.load(args.b)
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    changed, differing = [], []
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        if x.shape != y.shape or x.dtype != y.dtype:
            changed.append(
                {
                    "name": name,
                    "a": [list(x.shape), str(x.dtype)],
                    "b": [list(y.shape), str(y.dtype)],
                }
            )
            continue
        if x.size:
            delta = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64))))
            if delta > args.atol:
                differing.append({"name": name, "max_abs_diff": delta})
    result = {"only_in_a": only_a, "only_in_b": only_b, "changed": changed, "values": differing}
    if args.json:
        print(json.dumps(result))
    else:
        for name in only_a:
            print(f"only in A: {name}")
        for name in only_b:
            print(f"only in B: {name}")
        for c in changed:
            print(f"changed:   {c['name']}  {c['a'][0]} {c['a'][1]} -> {c['b'][0]} {c['b'][1]}")
        for d in differing:
            print(f"values:    {d['name']}  max |A - B| = {d['max_abs_diff']:.3g}")
        shared = len(set(a) & set(b))
        print(
            f"{shared} shared tensors, {len(differing)} with different values; "
            f"{len(only_a)} only in A, {len(only_b)} only in B, {len(changed)} changed"
        )
    return EXIT_DIFFERENT if any(result.values()) else EXIT_OK


def _check_classify_paths(args: argparse.Namespace) -> None:
    """The architecture and every path ``classify`` reads, checked before the model is built:
    a wrong one is one line, not a model's worth of shape log first."""
    from tpflax.zoo import ARCHITECTURES

    if args.arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {args.arch!r}; known: {', '.join(ARCHITECTURES)}")
    checkpoint.detect_format(args.weights)  # "no such file or checkpoint: ..."
    missing = [p for p in args.images if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"no such image file: {', '.join(missing)}")
    if args.labels is not None and not os.path.isfile(args.labels):
        raise FileNotFoundError(f"no such labels file: {args.labels}")


def cmd_classify(args: argparse.Namespace) -> int:
    _check_classify_paths(args)
    from tpflax.zoo.classify import classify, load_labels

    labels = load_labels(args.labels)
    predictions = classify(
        args.arch,
        args.weights,
        args.images,
        top=args.top,
        labels=labels,
        data_format=args.data_format,
    )
    if args.json:
        print(json.dumps([{"image": p.image, "top": p.top} for p in predictions]))
        return EXIT_OK
    for p in predictions:
        print(p.image)
        for cls, prob, name in p.top:
            print(f"  {prob:7.2%}  {cls:4d}  {name or ''}")
    if labels is None:
        print("(class names: pass --labels synset_words.txt, as tensorpack's ILSVRCMeta uses)")
    return EXIT_OK


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


VERBOSE_HELP = (
    "log what is done (classify: the model's shape log); show a reader's crash with its traceback"
)


def build_parser() -> argparse.ArgumentParser:
    # -v before or after the command: the command's own -v must not reset the first one to
    # its default, so only the top-level parser has one
    common = _Parser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
    )
    parser = _Parser(prog="tpflax", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    from tpflax import __version__

    parser.add_argument(
        "--version",
        action=_Version,
        version=f"tpflax {__version__}",
        help="the version, and the convolution path in force (oneDNN or XLA)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub_parser = sub.add_parser

    def add(name: str, **kw: Any) -> argparse.ArgumentParser:
        return sub_parser(name, parents=[common], **kw)

    p = add("inspect", help="names, shapes, dtypes and counts of a weight file")
    p.add_argument("file", help=".npz, TF checkpoint (prefix/.index/directory) or orbax dir")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_inspect)
    p = add(
        "convert",
        help="convert between .npz, TF checkpoint and orbax",
        description=f"Convert a weight file. The output format: {_format_rule()}. Missing parent "
        "folders are made.",
    )
    p.add_argument("src", help="the weight file to read (any format tpflax reads)")
    p.add_argument("dst", help="a .npz, a TF checkpoint prefix, or an orbax directory")
    p.add_argument(
        "--format",
        "--to",
        choices=list(checkpoint.FORMATS),
        help=f"the output format: {_format_rule()}",
    )
    p.add_argument("--force", "--overwrite", action="store_true", help="replace DST if it exists")
    p.add_argument(
        "--model-only",
        action="store_true",
        help="drop optimizer slots and global_step, as dump-model-params.py does",
    )
    p.set_defaults(run=cmd_convert)
    p = add("diff", help="compare two weight files; exit 1 if they differ")
    p.add_argument("a", help="the first weight file (A)")
    p.add_argument("b", help="the second weight file (B)")
    p.add_argument("--atol", type=float, default=0.0, help="ignore smaller value differences")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_diff)
    p = add("classify", help="top-5 ImageNet classes of images with a model-zoo file")
    p.add_argument("--arch", required=True, help="e.g. ResNet50, ShuffleNetV2-1x (tp.zoo)")
    p.add_argument("--weights", required=True, help="the model-zoo .npz (or any weight file)")
    p.add_argument("--labels", help="synset_words.txt (one class per line)")
    p.add_argument(
        "--top", type=_positive_int, default=5, help="how many classes to show per image (5)"
    )
    p.add_argument(
        "--data-format",
        default="NHWC",
        choices=["NHWC", "NCHW"],
        help="the layout to run the model in (NHWC)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="machine-readable output: a list of {image, top: [[class, probability, name]]}",
    )
    p.add_argument("images", nargs="+", help="JPEG/PNG files")
    p.set_defaults(run=cmd_classify)
    return parser


class _Version(argparse.Action):
    """``--version``: tpflax's version, then the convolution path in force (what
    ``tp.conv_impl.active()`` says: oneDNN and its instruction set, or XLA and why) and what
    host memory does (``tpflax/_src/host_memory.py``)."""

    def __init__(self, option_strings: list[str], version: str, **kwargs: Any) -> None:
        super().__init__(option_strings, nargs=0, default=argparse.SUPPRESS, **kwargs)
        self.version = version

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        import tpflax as tp
        from tpflax._src import host_memory

        print(
            f"{self.version}\nconvolutions: {tp.conv_impl.active()}\n"
            f"host memory: {host_memory.describe()}"
        )
        parser.exit()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s")
    # tpflax's own logger prints the shape log and load notes itself (INFO): only with -v
    tp_log = logging.getLogger("tpflax")
    previous = tp_log.level
    tp_log.setLevel(level)
    try:
        return int(args.run(args))
    except (OSError, ValueError, TypeError) as e:  # FormatError is a ValueError
        print(f"tpflax {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # a reader's own failure on a broken file: still one line, exit 2
        if args.verbose:
            raise
        print(
            f"tpflax {args.command}: error: {type(e).__name__}: {_one_line(e)} "
            "(the file is broken or not what it claims; -v shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    finally:
        tp_log.setLevel(previous)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
