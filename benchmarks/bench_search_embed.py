"""How fast does a corpus get embedded for search? Items/s per input kind of `openbind index build` with 0 and 2
DataLoader workers, of `openbind embed --engine ray` on a local Ray, and of the loaders alone (decoding only,
in this process), on the quickstart world's files with `imagebind_world` random weights saved as a checkpoint.

Each kind's files sit in a folder of their own (symlinks into a small world written to a temp dir; texts are the
world's captions as .txt files), walked as `index build` walks any folder. One run per cell, fresh index each.

    python benchmarks/bench_search_embed.py [--items 32] [--workers 0 2] [--batch-size 16] [--no-ray]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch

import openbind
from common import print_table
from openbind.eval.embedding import load_batch
from openbind.search import build_index
from openbind.search.files import file_value, kind_transform
from openbind.search.shards import embed_corpus
from openbind.search.sources import make_source, walk
from openbind.weights.checkpoint import save_checkpoint
from openbind.world import write_world

# which world files are which input kind (the world names its files; the registry knows the kinds)
PATTERNS = {"image": "*_image.jpg", "video": "*.mp4", "audio": "*_audio.wav", "depth": "*_depth.png",
            "thermal": "*_thermal.png", "imu": "*_imu.csv"}  # fmt: skip


def corpus(world: Path, root: Path, items: int) -> dict[str, tuple[Path, dict]]:
    """kind -> (a folder of `items` files of that kind, the glob rules that name them)."""
    folders = {}
    for kind, pattern in PATTERNS.items():
        folder = root / kind
        folder.mkdir(parents=True)
        for path in sorted(world.rglob(pattern))[:items]:
            (folder / f"{len(list(folder.iterdir())):05d}_{path.name}").symlink_to(path)
        folders[kind] = (folder, {} if kind in ("image", "video", "audio") else {kind: [pattern]})
    folder = root / "text"
    folder.mkdir()
    with open(world / "align_train.csv") as f:
        for i, row in zip(range(items), csv.DictReader(f)):
            (folder / f"{i:05d}.txt").write_text(row["text"])
    folders["text"] = (folder, {})
    return folders


def loaders_alone(folder: Path, globs: dict, config, batch_size: int) -> float:
    """Items/s of decoding only: each kind in each file through the model's transform, in this process."""
    candidates = list(walk([make_source(folder, globs)]))
    start = time.perf_counter()
    for i in range(0, len(candidates), batch_size):
        chunk = candidates[i : i + batch_size]
        for kind in openbind.modalities.kinds_in_file(chunk[0].kind):
            load_batch(kind, [file_value(kind, c.path) for c in chunk], kind_transform(config, kind))
    return len(candidates) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=32, help="files per input kind (at most what the world has)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray column")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_world(tmp / "world", train_per_class=1, test_per_class=2, align_per_combo=2,
                    videos_train_per_activity=2, videos_test_per_activity=2, arithmetic_per_combo=1)  # fmt: skip
        model = openbind.create_model("imagebind_world")
        save_checkpoint(model.state_dict(), model.config, tmp / "model")
        folders = corpus(tmp / "world", tmp / "corpus", args.items)
        if not args.no_ray:
            import ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        rows = []
        for kind, (folder, globs) in folders.items():
            count = len(list(folder.iterdir()))
            row = [kind, count, f"{loaders_alone(folder, globs, model.config, args.batch_size):.1f}"]
            for workers in args.workers:
                start = time.perf_counter()
                build_index(folder, tmp / "model", tmp / f"idx_{kind}_{workers}", globs=globs,
                            batch_size=args.batch_size, num_workers=workers, progress=False)  # fmt: skip
                row.append(f"{count / (time.perf_counter() - start):.1f}")
            if not args.no_ray:
                start = time.perf_counter()
                embed_corpus(folder, tmp / "model", tmp / f"emb_{kind}", globs=globs, engine="ray",
                             batch_size=args.batch_size, progress=False)  # fmt: skip
                row.append(f"{count / (time.perf_counter() - start):.1f}")
            rows.append(row)
        headers = ["kind", "items", "loaders alone"] + [f"index build, {w} workers" for w in args.workers]
        print_table(headers + ([] if args.no_ray else ["embed --engine ray"]), rows)


if __name__ == "__main__":
    main()
