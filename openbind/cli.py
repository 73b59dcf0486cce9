"""The `openbind` command line: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _convert(args: argparse.Namespace) -> int:
    from openbind.weights.convert import convert_official_checkpoint

    written = convert_official_checkpoint(
        args.checkpoint, args.out, preset=args.preset, whole=not args.no_whole, per_modality=args.per_modality
    )
    for path in written:
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openbind",
        description="ImageBind, whole: embed, train, evaluate and search across images, video, text, audio, "
        "depth, thermal and IMU.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    convert = sub.add_parser(
        "convert",
        help="turn an official ImageBind .pth into an openbind safetensors checkpoint directory",
        description="Convert the official `imagebind_huge.pth` (or any reference-format state dict) into a "
        "checkpoint directory: config.json + model.safetensors (all modalities) and, with --per-modality, one "
        "<modality>.safetensors per modality so that a text+audio model reads only those. The .pth is opened "
        "with weights_only=True and memory-mapped; every key is checked strictly against the preset.",
    )
    convert.add_argument("checkpoint", help="path to the official .pth file")
    convert.add_argument("--out", required=True, help="output directory (created; files are written atomically)")
    convert.add_argument(
        "--preset", default="imagebind_huge", help="model preset the checkpoint belongs to (default: imagebind_huge)"
    )
    convert.add_argument("--per-modality", action="store_true", help="also write one safetensors file per modality")
    convert.add_argument("--no-whole", action="store_true", help="skip the all-modality model.safetensors")
    convert.set_defaults(func=_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, OSError) as error:
        print(f"openbind {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
