"""The Trainer under torchrun: `openbind train align|bind` on 2 gloo processes trains like 1 process.

Both see the same global batches (the sampler deals each global batch in rank slices, the loss gathers every
rank's negatives, DDP averages the gradients), so the logged loss, accuracy, learning rate and gradient norm of
every step, and the final weights, agree up to floating-point reduction order. Also: the frozen-anchor cache is
written once (by rank 0) and read by both ranks, only rank 0 writes the run directory, and checkpoints resume
across world sizes (a 1-process checkpoint with `torchrun ... --resume`, a 2-process one in 1 process).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from openbind.factory import create_model
from openbind.train import TrainConfig, Trainer
from openbind.weights.checkpoint import read_state_dict
from media import write_manifests  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="this torch build has no torch.distributed gloo backend",
)
REPO = Path(__file__).resolve().parents[1]
NUM_ROWS = 16  # 2 global batches of 8 per epoch: 4 pairs per rank
# What every run shares: deterministic (no drop path, no workers, fixed seed) with the same global batch.
COMMON = dict(
    model="imagebind_tiny", epochs=2, batch_size=8, lr=2e-3, warmup_epochs=0.5, drop_path=0.0, seed=0,
    log_every=1, save_every=1000, progress=False,
)  # fmt: skip
STEPS = [1, 2, 3, 4]  # checkpoints at the end of each epoch: steps 2 and 4
# Each step sums the same products in another order (gathered logits, DDP's averaged gradients): the logged
# loss and gradient norm differ by ~1e-6 relative, so rtol 1e-4 / atol 1e-5 is far below any real difference
# (a wrong batch, gradient scale or anchor embedding changes them by >1e-2). The weights agree as closely except
# where the true gradient is 0 or ~0: AdamW divides the gradient by its own running RMS, so there it steps by up
# to lr on pure rounding noise. That is every attention key bias (softmax ignores a shift of all logits, so its
# gradient is exactly 0) and a few elements in a million elsewhere (4 of 4.1 M here): see _assert_same_weights.
RTOL, ATOL = 1e-4, 1e-5
LOGGED = ("step", "epoch", "loss", "accuracy", "lr", "grad_norm", "bad_items")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """16 scenes (an RGB image, its thermal image, a caption) as an image-text and an image-thermal manifest,
    paths relative to the manifest as a user writes them. (The synthetic world takes ~10 s to generate.)"""
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    colours, places = ["red", "green", "blue", "white"], ["top left", "top right", "bottom left", "bottom right"]
    rows: dict[str, list[dict[str, str]]] = {"align": [], "thermal": []}
    (root / "scenes").mkdir()
    for i in range(NUM_ROWS):
        colour, place = i % 4, i // 4
        rgb = (rng.random((48, 64, 3)) * 60).astype(np.uint8)
        y, x = 24 * (place // 2), 32 * (place % 2)
        rgb[y : y + 24, x : x + 32, colour if colour < 3 else slice(None)] = 255
        Image.fromarray(rgb).save(root / "scenes" / f"{i}.png")
        Image.fromarray(rgb.mean(axis=2).astype(np.uint8), mode="L").save(root / "scenes" / f"{i}_thermal.png")
        label, caption = colours[colour], f"a {colours[colour]} patch at the {places[place]}"
        rows["align"].append({"image": f"scenes/{i}.png", "text": caption, "label": label})
        rows["thermal"].append({"image": f"scenes/{i}.png", "thermal": f"scenes/{i}_thermal.png", "label": label})
    return write_manifests(root, rows)


def _options(stage: str, data: dict[str, Path], out: Path, **overrides) -> dict:
    values = dict(COMMON, train=[str(data["align" if stage == "align" else "thermal"])], out=str(out), **overrides)
    return {**values, "modality": "thermal"} if stage == "bind" else values


def _one_process(stage: str, options: dict, resume: bool = False) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # like each torchrun worker (OMP_NUM_THREADS=1); 2 threads are slower on 2 busy cores
    try:
        Trainer(TrainConfig(stage=stage, **options)).fit(resume=resume)
    finally:
        torch.set_num_threads(threads)
    return Path(options["out"])


def _torchrun(stage: str, options: dict, *extra: str) -> Path:
    """`python -m torch.distributed.run --nproc_per_node 2 -m openbind.cli train STAGE ...`: gloo on CPU."""
    argv = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, *map(str, value if isinstance(value, list) else [value])]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), "-m", "openbind.cli", "train", stage, *argv, *extra,
    ]  # fmt: skip
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count("trained model:") == 2, proc.stdout  # both ranks got to the end
    return Path(options["out"])


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return read_state_dict(run / "model" / "model.safetensors")


def _assert_same_weights(one: dict[str, torch.Tensor], two: dict[str, torch.Tensor]) -> None:
    """Every weight within RTOL/ATOL, except the attention key biases (gradient exactly 0) and, per tensor, at
    most 1 element in 1000 (gradient ~0); those still within what AdamW can move them (see RTOL)."""
    assert one.keys() == two.keys()
    max_drift = 10 * COMMON["lr"]  # each run moves a weight <= ~1.2 lr per step (AdamW, betas 0.9/0.95): 4 steps
    for key in one:
        a, b = one[key].float(), two[key].float()
        assert a.shape == b.shape and (a - b).abs().max() <= max_drift, key
        if key.endswith("attn.qkv.bias"):  # the q, k, v biases: leave out k
            width = a.shape[0] // 3
            a, b = torch.cat([a[:width], a[2 * width :]]), torch.cat([b[:width], b[2 * width :]])
        far = ~torch.isclose(b, a, rtol=RTOL, atol=ATOL)
        assert int(far.sum()) <= a.numel() // 1000, (key, int(far.sum()), (a - b).abs().max().item())


def _assert_same_training(one: Path, two: Path) -> None:
    """The same logged metrics at every step, the same final model (all towers: the frozen ones are equal)."""
    a, b = _log(one), _log(two)
    assert [r["step"] for r in a] == [r["step"] for r in b] == STEPS
    for ra, rb in zip(a, b):
        for key in LOGGED:
            assert rb[key] == pytest.approx(ra[key], rel=RTOL, abs=ATOL), (key, ra, rb)
    _assert_same_weights(_weights(one), _weights(two))


def _checkpoints(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


def _crashed_after_epoch_1(run: Path, into: Path) -> Path:
    """A copy of `run` as a kill during epoch 2 leaves it: the step-2 checkpoint, 2 log lines (and no cache)."""
    shutil.copytree(run / "checkpoints" / "step_000002", into / "checkpoints" / "step_000002")
    (into / "checkpoints" / "latest").write_text("step_000002\n")
    (into / "log.jsonl").write_text("".join(line + "\n" for line in (run / "log.jsonl").read_text().splitlines()[:2]))
    return into


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory) -> dict[str, Path]:
    """align: 1 process, and 2 (from scratch, --local-loss). bind thermal: 1 process, and 2 resuming the
    1-process run's step-2 checkpoint (steps 3-4; the anchor cache built anew). Each torchrun launch costs ~13 s
    of start-up on 2 cores, so bind is not also run from scratch on 2. bind starts from the preset, not from
    the align run: every rank must then build the same frozen towers (the cache is keyed by their weights)."""
    tmp = tmp_path_factory.mktemp("runs")
    out = {"align_1": _one_process("align", _options("align", data, tmp / "align_1"))}
    out["align_2"] = _torchrun("align", _options("align", data, tmp / "align_2", local_loss=True))
    out["bind_1"] = _one_process("bind", _options("bind", data, tmp / "bind_1"))
    resumed = _crashed_after_epoch_1(out["bind_1"], tmp / "bind_2")
    out["bind_2"] = _torchrun("bind", _options("bind", data, resumed), "--resume")
    return out


def test_align_on_two_processes_equals_one_process(runs):
    _assert_same_training(runs["align_1"], runs["align_2"])
    records = _log(runs["align_1"])
    assert records[0]["grad_norm"] > 1.0 and records[-1]["loss"] < records[0]["loss"]  # it does train


def test_bind_resumed_on_two_processes_equals_one_process(runs):
    _assert_same_training(runs["bind_1"], runs["bind_2"])
    torch.manual_seed(COMMON["seed"])
    before, after = create_model(COMMON["model"]).state_dict(), _weights(runs["bind_2"])
    assert {k.split(".")[1] for k in before if not torch.equal(before[k], after[k])} == {"thermal"}


def test_one_process_resumes_a_two_process_checkpoint(runs, data, tmp_path):
    run = _crashed_after_epoch_1(runs["align_2"], tmp_path / "align_resumed_on_1")
    _one_process("align", _options("align", data, run, local_loss=True), resume=True)
    _assert_same_training(runs["align_1"], run)


def test_rank_zero_alone_writes_the_run_directory(runs):
    for name in ("align", "bind"):
        one, two = runs[f"{name}_1"], runs[f"{name}_2"]
        assert _checkpoints(two) == _checkpoints(one) == ["latest", "step_000002", "step_000004"]
        assert [p for p in two.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")] == []
        assert len((two / "log.jsonl").read_text().splitlines()) == len(STEPS)  # one writer, no duplicate lines
        assert json.loads((two / "train_config.json").read_text())["batch_size"] == COMMON["batch_size"]


def test_anchor_cache_is_written_once_and_complete(runs):
    """Rank 0 embeds every anchor, the other rank reads the finished cache: on disk it is complete and holds
    the 1-process run's embeddings (a rank resetting it under the other would leave zeros or an empty index)."""
    cache = {}
    for name in ("bind_1", "bind_2"):
        files = sorted(p.name for p in (runs[name] / "cache").iterdir())
        assert len(files) == 2 and files[1] == files[0] + ".json", files
        meta = json.loads((runs[name] / "cache" / files[1]).read_text())
        cache[name] = files[0], np.load(runs[name] / "cache" / files[0]).astype(np.float32), meta["filled"]
    assert cache["bind_1"][0] == cache["bind_2"][0] and cache["bind_1"][2] == cache["bind_2"][2]
    one, two = cache["bind_1"][1], cache["bind_2"][1]
    assert one.shape == (NUM_ROWS, 64) and np.abs(one).sum(axis=1).min() > 0
    np.testing.assert_allclose(two, one, rtol=1e-3, atol=1e-3)  # float16 on disk
