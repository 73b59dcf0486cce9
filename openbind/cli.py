"""The `openbind` command line: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections.abc import Sequence


def _convert(args: argparse.Namespace) -> int:
    from openbind.weights.convert import convert_official_checkpoint

    written = convert_official_checkpoint(
        args.checkpoint, args.out, preset=args.preset, whole=not args.no_whole, per_modality=args.per_modality
    )
    for path in written:
        print(path)
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    from openbind.eval.embedding_cache import model_fingerprint
    from openbind.factory import create_model
    from openbind.runtime import export_onnx
    from openbind.runtime.onnx_export import ExportCheckError

    model = create_model(args.model, modalities=args.modality or None, runtime="torch")
    try:
        towers = export_onnx(model, args.out, int8=args.int8, source_fingerprint=model_fingerprint(args.model))
    except ExportCheckError as error:
        print(f"openbind export onnx: export check failed: {error}", file=sys.stderr)
        return 1
    print(f"{'tower':<10} {'file':<16} {'cosine fp32':>11}" + (f" {'cosine int8':>11}" if args.int8 else ""))
    for modality, tower in towers.items():
        line = f"{modality:<10} {tower['file']:<16} {tower['cosine_fp32']:11.6f}"
        print(line + (f" {tower['cosine_int8']:11.6f}" if args.int8 else ""))
    print(f"written to {args.out}")
    return 0


def _add_train_options(parser: argparse.ArgumentParser, stage: str) -> None:
    """One flag per `TrainConfig` field, typed by its annotation, with the field's own help."""
    from openbind.train.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name == "stage" or (stage == "align" and (field.name in ("modality", "anchor") or field.metadata.get("bind_only"))):
            continue
        flag = "--" + field.name.replace("_", "-")
        help_text = field.metadata["help"]
        default = field.default if field.default is not dataclasses.MISSING else None
        kind = hints[field.name]
        element = next((t for t in typing.get_args(kind) if t is not type(None)), kind)  # list[T] -> T, T | None -> T
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            parser.add_argument(flag, nargs="+" if typing.get_origin(kind) is list else None, required=True, help=help_text)
        elif typing.get_origin(kind) is list:
            parser.add_argument(flag, nargs="+", type=element, default=[], help=help_text)
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        else:
            required = field.name == "modality" and stage == "bind"
            parser.add_argument(
                flag, type=element, default=default, required=required,
                help=help_text + ("" if default is None else f" (default: {default})"),
            )  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")


def _train(args: argparse.Namespace) -> int:
    from openbind.train import TrainConfig, Trainer, cleanup

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names and k != "stage"}  # the subcommand is stage
    if values.get("grad_clip") == 0:
        values["grad_clip"] = None
    trainer = Trainer(TrainConfig(stage=args.stage, **values))
    model_dir = trainer.fit(resume=args.resume)
    summary = trainer.summary
    del trainer  # DistributedDataParallel must go before its process group
    cleanup()
    print(f"trained model: {model_dir}")
    if summary is not None:  # rank 0
        best = summary["best"]
        chosen = f"best validation loss {best['val_loss']:.3f}" if best else "no validation split: the last step"
        print(f"  {summary['steps']} steps ({summary['epochs']:g} epochs, lr {summary['lr']:.3g}), "
              f"exported step {summary['exported_step']} ({chosen})")  # fmt: skip
        if not summary["left_chance"]:
            print(f"  warning: the training loss ended at chance level ({summary['chance_loss']:.2f}): see above")
    return 0


def _eval_zeroshot(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from openbind.data.manifest import read_manifest
    from openbind.eval import evaluate_manifest
    from openbind.factory import create_model
    from openbind.utils import atomic_write_text

    classes = [line.strip() for line in Path(args.classes).read_text().splitlines() if line.strip()]
    result = evaluate_manifest(
        create_model(args.model), read_manifest(args.data), args.modality, classes, label_column=args.label_column,
        batch_size=args.batch_size, num_workers=args.num_workers,
    )  # fmt: skip
    print(f"{args.modality} zero-shot on {result.num_items} items, {len(classes)} classes (chance {result.chance:.3f})")
    print(f"top-1 {result.top1:.4f}   top-5 {result.top5:.4f}")
    if result.skipped:
        print(f"skipped {len(result.skipped)} bad item(s); first: {result.skipped[0]}")
    if args.json:
        atomic_write_text(args.json, json.dumps(result.to_dict(), indent=2))
    return 0


def _runner_options(args: argparse.Namespace) -> dict:
    from openbind.modalities.text.transform import IMAGENET_TEMPLATES

    templates = IMAGENET_TEMPLATES
    if args.templates:
        from pathlib import Path

        templates = [line.strip() for line in Path(args.templates).read_text().splitlines() if line.strip()]
    return dict(
        device=args.device, precision=args.precision, batch_size=args.batch_size, num_workers=args.num_workers,
        cache_root=None if args.no_cache else (args.cache_dir or "default"), templates=templates,
    )  # fmt: skip


def _eval_benchmark(args: argparse.Namespace) -> int:
    from openbind.eval.benchmarks.report import comparison_rows
    from openbind.eval.benchmarks.run import evaluate

    out = args.out or f"eval_{args.task}"
    result = evaluate(
        args.task, args.root, args.model, out=out, classes=args.classes, shots=args.few_shot, **_runner_options(args)
    )
    counts = result["counts"]
    print(f"{result['title']}: {counts['evaluated']} of {counts['items']} items ({counts['skipped']} skipped)")
    for name, paper, ours in comparison_rows(result):
        print(f"  {name:<16} openbind {ours:6.2f}" + (f"   paper {paper:5.1f}" if paper is not None else ""))
    for k, value in result.get("few_shot", {}).get("shots", {}).items():
        print(f"  few-shot k={k:<3} top-1 {value['top1']:6.2f} ± {value['std']:.2f}")
    print(f"results: {out}/{args.task}.json, {out}/{args.task}.md")
    return 0


def _eval_table2(args: argparse.Namespace) -> int:
    from openbind.eval.benchmarks.run import evaluate_table2, read_roots

    out = args.out or "eval_table2"
    evaluate_table2(read_roots(args.roots), args.model, out=out, **_runner_options(args))
    print(open(f"{out}/table2.md").read())
    return 0


def _eval_list(args: argparse.Namespace) -> int:
    from openbind.eval.benchmarks import all_benchmarks
    from openbind.eval.benchmarks.report import describe

    print(describe(all_benchmarks()))
    return 0


def _add_runner_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="preset, checkpoint directory or training run directory")
    parser.add_argument("--out", default=None, help="folder for the result JSON, Markdown and plots")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes decoding the files")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16, fp16, amp_bf16, amp_fp16, int8 (CPU)")
    parser.add_argument("--templates", default=None, help="prompt templates, one per line with {} (default: CLIP's 80)")
    parser.add_argument("--cache-dir", default=None, help="where embeddings are kept (default: the openbind cache)")
    parser.add_argument("--no-cache", action="store_true", help="embed everything again and keep nothing")


def _world(args: argparse.Namespace) -> int:
    from openbind.world import write_world

    info = write_world(args.out, seed=args.seed, processes=args.processes, progress=True)
    print(f"world written to {info.out_dir}: {info.counts}")
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from openbind.reproduce.quickstart import run_quickstart

    report = run_quickstart(args.out, seed=args.seed, preset=args.model, processes=args.processes)
    print(f"report: {report}")
    return 0


def _reproduce_scaling(args: argparse.Namespace) -> int:
    from openbind.reproduce.scaling import run_scaling

    report = run_scaling(args.out, recipe=args.size, seed=args.seed, processes=args.processes)
    print(f"report: {report}")
    return 0


def _reproduce_fewshot(args: argparse.Namespace) -> int:
    from openbind.reproduce.fewshot import run_fewshot

    report = run_fewshot(args.out, source=args.source, recipe=args.size, seed=args.seed, processes=args.processes)
    print(f"report: {report}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from openbind.factory import get_model_config, list_models

    for name in list_models():
        config = get_model_config(name)
        towers = ", ".join(f"{m} {c.width}x{c.depth}" for m, c in config.encoders.items())
        print(f"{name:<16} joint dim {config.embed_dim:<5} {towers}")
    return 0


def _index_build(args: argparse.Namespace) -> int:
    from openbind.search import build_index
    from openbind.search.ann import parse_size
    from openbind.search.sources import parse_globs

    if (args.src is None) == (args.from_embeddings is None):
        raise ValueError("index build takes either SRC (with --model) or --from-embeddings DIR")
    if args.from_embeddings is not None:
        from openbind.search.shards import build_index_from_embeddings

        index, added = build_index_from_embeddings(
            args.from_embeddings, args.out, index_type=args.index_type, memory_budget=parse_size(args.memory_budget)
        )
        with index:
            print(f"{index.root}: {len(index)} items ({added} added from {args.from_embeddings}, "
                  f"{len(index.failures())} failed); index {index.meta['index']['factory']}")  # fmt: skip
        return 0
    if args.model is None:
        raise ValueError("index build SRC needs --model")
    index, report = build_index(
        args.src, args.model, args.out, globs=parse_globs(args.modality_glob), batch_size=args.batch_size,
        num_workers=args.num_workers, index_type=args.index_type, memory_budget=parse_size(args.memory_budget),
        backend=args.backend, uri=args.uri, collection=args.collection, precision=args.precision, device=args.device,
    )  # fmt: skip
    with index:
        _print_sync(index, report)
    return 0


def _embed(args: argparse.Namespace) -> int:
    from openbind.search.shards import embed_corpus
    from openbind.search.sources import parse_globs

    report = embed_corpus(
        args.src, args.model, args.out, globs=parse_globs(args.modality_glob), engine=args.engine,
        ray_address=args.ray_address, batch_size=args.batch_size, num_workers=args.num_workers,
        shard_size=args.shard_size, dtype=args.dtype,
    )  # fmt: skip
    print(f"{args.out}: {report.shards} shards ({report.written} written now, {report.skipped} already complete); "
          f"{report.items} items, {report.vectors} vectors embedded now")  # fmt: skip
    if report.failed:
        print(f"skipped {len(report.failed)} bad file(s) (rows with an error in the shards):")
        for path, reason in report.failed:
            print(f"  {path}: {reason}")
    return 0


def _index_update(args: argparse.Namespace) -> int:
    from openbind.search import Index

    with Index.open(args.index, precision=args.precision, device=args.device) as index:
        _print_sync(index, index.update(batch_size=args.batch_size, num_workers=args.num_workers))
    return 0


def _print_sync(index, report) -> None:
    print(
        f"{index.root}: {len(index)} items; {report.added} new, {report.changed} changed, {report.removed} removed, "
        f"{report.unchanged} unchanged; index {index.meta['index']['factory']}"
    )
    if report.failed:
        print(f"skipped {len(report.failed)} bad file(s) (listed in the index):")
        for path, reason in report.failed:
            print(f"  {path}: {reason}")


def _search(args: argparse.Namespace) -> int:
    import json

    from openbind.modalities import input_names
    from openbind.search import Index
    from openbind.search.query import query_terms

    by_kind = {kind: getattr(args, kind) for kind in input_names()}
    terms = query_terms(args.query, by_kind, args.item, args.minus)
    with Index.open(args.index, model=args.model) as index:
        results = index.search(terms, k=args.k, modalities=args.modality or None)
    if args.json:
        print(json.dumps({"results": [vars(r) for r in results]}, indent=2))
        return 0
    print(f"{'score':>7}  {'kind':<8} path")
    for r in results:
        print(f"{r.score:7.4f}  {r.modality:<8} {r.path}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    from openbind.serve import BatchSettings, Limits, ServeSettings, serve
    from openbind.serve.limits import MIB, parse_upload_limits

    largest, by_kind = parse_upload_limits(args.max_upload_mb)
    limits = Limits(
        max_request_bytes=int(args.max_request_mb * MIB), max_file_bytes=largest, max_file_bytes_by_kind=by_kind,
        max_pixels=args.max_pixels, max_seconds=args.max_seconds, max_k=args.max_k, timeout_s=args.timeout,
        max_concurrent=args.max_concurrent,
    )  # fmt: skip
    settings = ServeSettings(
        token=args.token or os.environ.get("OPENBIND_TOKEN") or None, cors_origins=tuple(args.cors_origin),
        limits=limits, batching=BatchSettings(args.max_batch, args.max_wait_ms), decode_workers=args.decode_workers,
        threads=args.threads, device=args.device, precision=args.precision, runtime=args.runtime,
    )  # fmt: skip
    serve(args.index, args.model, host=args.host, port=args.port, settings=settings, log_level=args.log_level)
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

    export = sub.add_parser(
        "export",
        help="export a model for another runtime (ONNX, for onnxruntime on the CPU)",
        description="Export a model for another runtime. See docs/runtimes.md for when to use which.",
    )
    formats = export.add_subparsers(dest="format", required=True, metavar="FORMAT")
    onnx = formats.add_parser(
        "onnx",
        help="one ONNX file per tower, checked against the torch model",
        description="Write DIR/<modality>.onnx for every tower (dynamic batch; text also of dynamic length), "
        "DIR/config.json and DIR/onnx.json (per tower: the minimum cosine of its embeddings to the torch model's "
        "on random inputs; an fp32 graph under 0.9999 fails the export). Load DIR with create_model(DIR) or pass "
        "it as --model wherever a model is taken: it runs on onnxruntime.",
    )
    onnx.add_argument("--model", required=True, help="preset, checkpoint directory or training run directory")
    onnx.add_argument("--out", required=True, metavar="DIR", help="the export directory (must not exist, or be empty)")
    onnx.add_argument("--int8", action="store_true",
                      help="int8 graphs: the trunks' linear layers quantized by onnxruntime (dynamic), after the fp32 check")  # fmt: skip
    onnx.add_argument("--modality", nargs="+", action="extend", default=[], metavar="M",
                      help="export only these towers (default: all)")  # fmt: skip
    onnx.set_defaults(func=_export_onnx)

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

    evaluate = sub.add_parser(
        "eval",
        help="evaluate a model: the paper's benchmarks, or a manifest",
        description="Evaluate a trained or official model on the ImageBind paper's benchmarks, read from the "
        "datasets as their publishers ship them (`openbind eval list`), or zero-shot on a manifest.",
    )
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

    from openbind.eval.benchmarks import all_benchmarks

    listing = tasks.add_parser("list", help="the benchmarks, their metrics, the paper's numbers and expected layouts")
    listing.set_defaults(func=_eval_list)
    table2 = tasks.add_parser(
        "table2",
        help="every benchmark whose root is given, and the paper's Table 2 beside ours",
        description="Run every benchmark named in a roots file (TOML: `esc50 = \"~/data/ESC-50-master\"`, one line "
        "per benchmark) with one model, then write table2.md / table2.json beside each benchmark's results.",
    )
    table2.add_argument("--roots", required=True, help="TOML file: benchmark name = dataset folder")
    _add_runner_options(table2)
    table2.set_defaults(func=_eval_table2)
    for benchmark in all_benchmarks():
        layout = "\n".join("  " + line for line in benchmark.layout.strip().splitlines())
        paper = ", ".join(f"{k} {v}" for k, v in benchmark.paper.items())
        command = tasks.add_parser(
            benchmark.name,
            help=f"{benchmark.title} ({benchmark.task}; paper: {paper})",
            description=f"{benchmark.title}: {benchmark.task}, scored as in the ImageBind paper (paper: {paper}). "
            f"--root is the folder the dataset unpacks to:\n\n{layout}\n\n{benchmark.notes}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_argument("--root", required=True, help="the dataset folder, as its publisher ships it")
        command.add_argument("--classes", default=None, help="class names, one per line in label order "
                             "(`a | b` gives a class several prompt names); replaces the built-in list")  # fmt: skip
        if benchmark.probe is not None:
            command.add_argument("--few-shot", type=int, nargs="+", default=[], metavar="K",
                                 help="also train linear probes on K examples per class (the paper: 1 2 4 8)")  # fmt: skip
        _add_runner_options(command)
        command.set_defaults(func=_eval_benchmark, few_shot=[])

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
    _add_reproduce_commands(sub)
    _add_search_commands(sub)
    return parser


def _add_reproduce_commands(sub) -> None:
    reproduce = sub.add_parser(
        "reproduce", help="the paper's scaling and few-shot figures on the built-in world",
        description="Experiments of the ImageBind paper on the built-in world, each writing a report directory "
        "(report.md with tables, report.json, PNG plots). Run one again with the same --out to resume it.",
    )  # fmt: skip
    experiments = reproduce.add_subparsers(dest="experiment", required=True)
    scaling = experiments.add_parser(
        "scaling", help="a stronger image encoder lifts every bound modality (the paper's Figure 6)",
        description="Align image+text towers of three sizes (each larger one on more image-caption pairs), bind "
        "audio, depth, thermal and IMU to each frozen pair with one fixed recipe, and report every bound "
        "modality's emergent zero-shot against the image tower's own (table, rank correlation, scaling.png). "
        "About 30-35 minutes on a 2-core CPU (docs/reproduce.md); every trained run is kept under "
        "DIR/towers/.",
    )  # fmt: skip
    fewshot = experiments.add_parser(
        "fewshot", help="few-shot linear probes on bound audio and depth vs training from scratch (Figure 3)",
        description="A linear probe on frozen bound audio and depth embeddings with k = 1, 2, 4, 8 labelled "
        "examples per class, against the same encoder architecture trained from scratch (end to end, with its "
        "linear head) on the same examples; several draws, mean and spread (table, fewshot.png).",
    )  # fmt: skip
    fewshot.add_argument("--from", dest="source", default=None, metavar="DIR",
                         help="a quickstart output directory whose bound towers to probe (default: train the "
                         "world, align and the audio and depth binds into --out first; the from-scratch baselines "
                         "train beside the binds)")  # fmt: skip
    for command, func in ((scaling, _reproduce_scaling), (fewshot, _reproduce_fewshot)):
        command.add_argument("--out", required=True, help="report directory (also holds what is trained)")
        command.add_argument("--seed", type=int, default=0, help="seed of the world and of every training run")
        command.add_argument("--size", choices=("full", "smoke"), default="full",
                             help="full: the experiment; smoke: a tiny world and one-epoch runs that finish in "
                             "seconds (checks the pipeline, not the claim)")  # fmt: skip
        command.add_argument("--processes", type=int, default=2,
                             help="training runs at once, one torch thread each (default 2)")  # fmt: skip
        command.set_defaults(func=func)


def _add_search_commands(sub) -> None:
    from openbind.modalities import input_names
    from openbind.search.ann import INDEX_TYPES
    from openbind.search.store import STORES

    index = sub.add_parser(
        "index",
        help="build or update a search index of a folder or manifest",
        description="An index folder: items in SQLite, float16 vectors and a FAISS index chosen from the size "
        "(see docs/search.md). Builds are resumable: run the same command again after an interruption.",
    )
    actions = index.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="index a folder (recursively) or a manifest with a model")
    build.add_argument("src", nargs="?", help="a folder (input kind from each file's suffix) or a CSV/JSONL manifest")
    build.add_argument("--from-embeddings", default=None, metavar="DIR",
                       help="index the Parquet shards written by `openbind embed` instead of embedding SRC here")  # fmt: skip
    build.add_argument("--model", default=None, help="checkpoint or training run directory (with SRC)")
    build.add_argument("--out", required=True, help="the index folder (created, or continued)")
    embed = sub.add_parser(
        "embed",
        help="embed a folder or manifest into Parquet shards, here or on a Ray cluster",
        description="Walk SRC as `openbind index build` does and write OUT/shards/shard-<n>.parquet (id, path, kind, "
        "modality, embedding, size, mtime_ns, sha256, model_fingerprint, error). Resumable per shard: run the same "
        "command again. Then `openbind index build --from-embeddings OUT --out INDEX` on one machine.",
    )
    embed.add_argument("src", help="a folder or a CSV/JSONL manifest (on a cluster: on a filesystem every node sees)")
    embed.add_argument("--model", required=True, help="checkpoint or training run directory")
    embed.add_argument("--out", required=True, help="the embedding folder (created, or continued)")
    embed.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this process and its DataLoader workers; ray: Ray Data (pip install 'openbind[ray]')")  # fmt: skip
    embed.add_argument("--ray-address", default=None, help="the Ray cluster to run on ('auto', 'ray://HOST:10001')")
    embed.add_argument("--shard-size", type=int, default=1024, help="items per Parquet shard (default 1024)")
    embed.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="stored vector type")
    embed.add_argument("--batch-size", type=int, default=32)
    embed.add_argument("--num-workers", type=int, default=0,
                       help="local: DataLoader workers decoding files; ray: embedding actors (default: one per GPU, or 1)")  # fmt: skip
    embed.set_defaults(func=_embed)
    for parser in (build, embed):
        parser.add_argument("--modality-glob", action="append", default=[], metavar="MODALITY=PATTERN",
                            help="files matching PATTERN (relative to SRC, e.g. '**/*_depth.png') are of this kind")  # fmt: skip
    build.add_argument("--index-type", choices=INDEX_TYPES, default=None, help="override the automatic choice")
    build.add_argument("--memory-budget", default="4G", help="memory the FAISS index may use (default 4G)")
    build.add_argument("--backend", choices=sorted(STORES), default="faiss",
                       help="where vectors are searched: FAISS in the index folder, or a Milvus collection")  # fmt: skip
    build.add_argument("--uri", default=None,
                       help="milvus: a local .db file (Milvus Lite) or http://host:19530 (a server or cluster)")  # fmt: skip
    build.add_argument("--collection", default=None, help="milvus: the collection (default openbind_<index folder>)")
    update = actions.add_parser("update", help="embed new and changed files of the recorded sources, drop deleted ones")
    update.add_argument("index", help="the index folder")
    for parser in (build, update):
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes decoding files")
        parser.add_argument("--device", default="cpu", help="where the model embeds: cpu, cuda, cuda:1, ...")
        parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16", "int8"],
                            help="how the model runs (int8: dynamic int8 linear layers, CPU; its vectors agree with "
                            "fp32 to a cosine of about 0.999, see docs/runtimes.md)")  # fmt: skip
    build.set_defaults(func=_index_build)
    update.set_defaults(func=_index_update)

    search = sub.add_parser(
        "search",
        help="query an index with texts, files and indexed items, added and subtracted with weights",
        description="Each term may end in :WEIGHT (`--text 'a beach:0.5'`). The terms' unit embeddings are summed "
        "with their weights and renormalised; --minus subtracts a text. Query files and --item ids are left out of "
        "the results.",
    )
    search.add_argument("index", help="the index folder")
    search.add_argument("query", nargs="*", help="texts, or files of a known kind")
    for kind in input_names():
        search.add_argument(f"--{kind}", action="append", default=[], metavar="VALUE", help=f"a query term of input kind {kind}")
    search.add_argument("--item", action="append", default=[], metavar="ID", help="an indexed item, by id")
    search.add_argument("--minus", action="append", default=[], metavar="TEXT", help="a text to subtract")
    search.add_argument("--modality", nargs="+", action="extend", default=[], metavar="M",
                        help="only results of these input kinds or modalities")  # fmt: skip
    search.add_argument("-k", type=int, default=10, help="how many results (default 10)")
    search.add_argument("--json", action="store_true", help="print {\"results\": [{id, path, modality, score}]}")
    search.add_argument("--model", default=None, help="the index's model at another path (checked to be the same)")
    search.set_defaults(func=_search)
    _add_serve_command(sub)


def _add_serve_command(sub) -> None:
    serve = sub.add_parser(
        "serve",
        help="serve an index over HTTP: a search page at / and a JSON API (needs the serve extra)",
        description="Serves POST /v1/embed, POST /v1/search, GET /v1/items/ID and /v1/items/ID/media, /healthz, "
        "/readyz, /metrics (Prometheus), the API's docs at /docs and a search page at /. Requests from all clients "
        "are embedded together in batches. Binds 127.0.0.1; any other host needs --token (or OPENBIND_TOKEN), "
        "then sent by clients as 'Authorization: Bearer TOKEN'. See docs/serve.md.",
    )  # fmt: skip
    serve.add_argument("index", help="the index folder (openbind index build)")
    serve.add_argument("--model", default=None, help="the index's model at another path (checked to be the same)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--token", default=None, help="bearer token clients must send (default: $OPENBIND_TOKEN)")
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="an origin whose pages may call the API (repeat; default none: CORS off)")  # fmt: skip
    serve.add_argument("--max-batch", type=int, default=32, help="most items per forward pass (1: no batching)")
    serve.add_argument("--max-wait-ms", type=float, default=0.0,
                       help="how long a batch waits for more requests (default 0: it takes what is queued; batches "
                       "fill while the tower is busy)")  # fmt: skip
    serve.add_argument("--max-concurrent", type=int, default=64,
                       help="embed and search requests in progress at once; beyond it 429 + Retry-After (default 64)")  # fmt: skip
    serve.add_argument("--timeout", type=float, default=30.0, help="seconds a request may take (default 30)")
    serve.add_argument("--max-upload-mb", action="append", default=[], metavar="[KIND=]MB",
                       help="largest upload (default 25 MB), or of one input kind: --max-upload-mb video=200")  # fmt: skip
    serve.add_argument("--max-request-mb", type=float, default=64.0, help="largest request body (default 64 MB)")
    serve.add_argument("--max-pixels", type=int, default=40_000_000,
                       help="most pixels of an uploaded image or video frame (default 40 million)")  # fmt: skip
    serve.add_argument("--max-seconds", type=float, default=600.0,
                       help="longest uploaded sound or video (default 600 s)")  # fmt: skip
    serve.add_argument("--max-k", type=int, default=1000, help="most results a search may ask for (default 1000)")
    serve.add_argument("--decode-workers", type=int, default=2, help="threads decoding uploads (default 2)")
    serve.add_argument("--threads", type=int, default=1,
                       help="torch threads inside each forward pass (default 1: requests run in parallel instead; "
                       "more can help a large model with few clients on many cores)")  # fmt: skip
    serve.add_argument("--device", default=None, help="where the model runs (default: cuda when available)")
    serve.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16", "int8"],
                       help="how the torch model runs (int8: dynamic int8 linear layers on the CPU, ~2-3x fp32)")
    serve.add_argument("--runtime", default=None, choices=["torch", "onnx"],
                       help="onnx: run --model, an `openbind export onnx` directory of the index's model, on "
                       "onnxruntime (CPU); default: onnx for such a directory, torch otherwise")  # fmt: skip
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                       help="uvicorn's log level (default info: one line per request)")  # fmt: skip
    serve.set_defaults(func=_serve)


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
