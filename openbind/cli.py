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


TRAIN_HELP = {
    "train": "training manifest(s): CSV/JSONL with modality columns (image, video, text, audio, depth, thermal, "
    "imu), paths relative to the manifest; several are mixed with one pair type per batch",
    "out": "run directory: train_config.json, log.jsonl, checkpoints/, cache/, curves.png and the final model/",
    "modality": "bind: the modality to bind (audio, depth, thermal, imu, ...); align: text",
    "anchor": "the frozen side of each pair: image or video (video for IMU, as in the paper)",
    "model": "preset or checkpoint directory to start from when --init is not given (see `openbind models`)",
    "init": "start from this run directory (its model/) or checkpoint directory, e.g. the align run",
    "epochs": "passes over the (replicated) training data; may be fractional",
    "batch_size": "global batch size, split across processes",
    "lr": "peak learning rate of AdamW (betas 0.9, 0.95)",
    "weight_decay": "AdamW weight decay (not applied to biases, norms, tokens, positions, scales)",
    "warmup_epochs": "linear warmup length before the cosine decay",
    "min_lr_ratio": "final learning rate as a fraction of --lr",
    "grad_clip": "clip the gradient norm to this value (0 disables)",
    "drop_path": "maximum stochastic-depth rate of the trained towers (default: the config's)",
    "finetune": "full | last:N (last N blocks + head) | lora:R (rank-R adapters on attention and MLP)",
    "precision": "fp32 | bf16 (autocast)",
    "grad_checkpointing": "recompute activations in the backward pass to save memory",
    "cache_anchors": "bind: embed every anchor once with the frozen tower and cache it on disk",
    "preload": "decode every training input once and keep it in memory (fast for small datasets)",
    "augment": "bind depth or thermal: random crops (70-100%% of the side) and left-right flips of the maps; "
    "helps towers that learn from few maps",
    "local_loss": "multi-process: each rank scores only its own rows against all gathered negatives",
    "replication": "per-manifest replication factors (the paper's Table 9), one per --train",
    "num_workers": "DataLoader worker processes for decoding",
    "seed": "seed of the data order and initialization (the run is deterministic given seed and world size)",
    "save_every": "steps between checkpoints (one is also written at the end of every epoch)",
    "keep": "complete checkpoints to keep",
    "log_every": "steps between log.jsonl records",
    "progress": "show progress bars",
}


def _add_train_options(parser: argparse.ArgumentParser, stage: str) -> None:
    import dataclasses

    from openbind.train.trainer import TrainConfig

    for field in dataclasses.fields(TrainConfig):
        if field.name == "stage" or (stage == "align" and field.name in ("modality", "anchor", "cache_anchors", "augment")):
            continue
        flag = "--" + field.name.replace("_", "-")
        default = field.default if field.default is not dataclasses.MISSING else None
        if field.name == "train":
            parser.add_argument(flag, nargs="+", required=True, help=TRAIN_HELP["train"])
        elif field.name == "replication":
            parser.add_argument(flag, nargs="+", type=float, default=[], help=TRAIN_HELP["replication"])
        elif isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=TRAIN_HELP[field.name])
        else:
            kind = {"int": int, "float": float}.get(str(field.type).split(" ")[0], str)
            required = field.name in ("out",) or (field.name == "modality" and stage == "bind")
            parser.add_argument(
                flag, type=kind, default=default, required=required,
                help=TRAIN_HELP[field.name] + ("" if default is None else f" (default: {default})"),
            )  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    from openbind.train.distributed import cleanup
    from openbind.train.trainer import TrainConfig, Trainer

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names and k != "stage"}  # the subcommand is stage
    if values.get("grad_clip") == 0:
        values["grad_clip"] = None
    config = TrainConfig(stage=args.stage, **values)
    trainer = Trainer(config)
    model_dir = trainer.fit(resume=args.resume)
    del trainer  # DistributedDataParallel must go before its process group
    cleanup()
    print(f"trained model: {model_dir}")
    return 0


def _eval_zeroshot(args: argparse.Namespace) -> int:
    from openbind.eval.cli import run_zero_shot

    return run_zero_shot(args)


def _world(args: argparse.Namespace) -> int:
    from openbind.world import write_world

    info = write_world(args.out, seed=args.seed, processes=args.processes, progress=True)
    print(f"world written to {info.out_dir}: {info.counts}")
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from openbind.quickstart import run_quickstart

    report = run_quickstart(args.out, seed=args.seed, preset=args.model, processes=args.processes)
    print(f"report: {report}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from openbind.factory import get_model_config, list_models

    for name in list_models():
        config = get_model_config(name)
        towers = ", ".join(f"{m} {c.width}x{c.depth}" for m, c in config.encoders.items())
        print(f"{name:<16} joint dim {config.embed_dim:<5} {towers}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openbind",
        description="ImageBind, whole: embed, train, evaluate and search across images, video, text, audio, "
        "depth, thermal and IMU.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = sub.add_parser("models", help="list the model presets", description="List the model presets.")
    models.set_defaults(func=_models)

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

    train = sub.add_parser(
        "train",
        help="train: align image+text, or bind a modality to the frozen image/text space",
        description="Two stages, as in ImageBind. `align` trains the image and text towers CLIP-style on "
        "(image, caption) pairs; `bind` freezes them and trains one modality's encoder on (image or video, "
        "modality) pairs with symmetric InfoNCE at the modality's fixed temperature. Multi-process: launch with "
        "`torchrun --nproc_per_node N -m openbind.cli train ...` (gloo on CPU, NCCL on GPU).",
    )
    stages = train.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for stage, text in (
        ("align", "image + text towers on (image, caption) pairs (CLIP-style, learnable temperature)"),
        ("bind", "one modality's encoder on (image or video, modality) pairs; image and text towers frozen"),
    ):
        stage_parser = stages.add_parser(stage, help=text, description=text)
        _add_train_options(stage_parser, stage)
        stage_parser.set_defaults(func=_train)

    evaluate = sub.add_parser("eval", help="evaluate a model", description="Evaluate a trained or official model.")
    tasks = evaluate.add_subparsers(dest="task", required=True, metavar="TASK")
    zeroshot = tasks.add_parser(
        "zeroshot",
        help="zero-shot classification through text prompts",
        description="Embed every item of a manifest, embed each class name in the 80 CLIP ImageNet templates "
        "(averaged), and report top-1/top-5 accuracy against the manifest's label column.",
    )
    zeroshot.add_argument("--model", required=True, help="run directory, checkpoint directory or preset")
    zeroshot.add_argument("--modality", required=True, help="the manifest column to classify (image, audio, ...)")
    zeroshot.add_argument("--data", required=True, help="manifest with the modality column and a label column")
    zeroshot.add_argument("--classes", required=True, help="text file: one class name per line, in label order")
    zeroshot.add_argument("--label-column", default="label", help="manifest column holding the class (default: label)")
    zeroshot.add_argument("--batch-size", type=int, default=32)
    zeroshot.add_argument("--num-workers", type=int, default=0)
    zeroshot.add_argument("--json", default=None, help="also write the result as JSON to this path")
    zeroshot.set_defaults(func=_eval_zeroshot)

    world = sub.add_parser(
        "world",
        help="write the built-in six-modality world (files + manifests)",
        description="Write a deterministic paired dataset of all six modalities (images, captions, WAV sounds, "
        "16-bit depth PNGs, thermal PNGs, MP4 ego-motion videos with IMU CSVs) with train/test manifests.",
    )
    world.add_argument("--out", required=True, help="directory to create (written atomically)")
    world.add_argument("--seed", type=int, default=0)
    world.add_argument("--processes", type=int, default=1, help="render in this many processes (same output)")
    world.set_defaults(func=_world)

    quick = sub.add_parser(
        "quickstart",
        help="world -> align -> bind audio, depth, thermal, IMU -> evaluate -> report, on a laptop CPU",
        description="Reproduce ImageBind's central claim in minutes: modalities never trained together align "
        "through images. Writes DIR/report.md (with plots), DIR/report.json and DIR/model (every trained tower). "
        "Run it again with the same --out to resume an interrupted run.",
    )
    quick.add_argument("--out", required=True, help="output directory")
    quick.add_argument("--seed", type=int, default=0)
    quick.add_argument("--model", default="imagebind_world", help="model preset (default: imagebind_world)")
    quick.add_argument(
        "--processes", type=int, default=2,
        help="processes rendering the world, and bind stages trained at once with one torch thread each "
        "(default 2; 1: everything in this process)",
    )  # fmt: skip
    quick.set_defaults(func=_quickstart)
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
