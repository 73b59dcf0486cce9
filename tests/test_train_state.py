"""Training checkpoints: exact resume, nothing half-written ever read, even under kill -9."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from openbind.train import (
    build_optimizer,
    get_rng_state,
    is_complete,
    list_checkpoints,
    load_training_state,
    restore_rng,
    save_training_state,
    warmup_cosine,
)
from openbind.weights.checkpoint import read_state_dict

REPO = Path(__file__).resolve().parents[1]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_run(seed: int):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.3), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 3))
    optimizer = build_optimizer(model, lr=1e-2, weight_decay=0.1)
    return model, optimizer, warmup_cosine(optimizer, warmup_steps=3, total_steps=10, min_lr_ratio=0.1)


def train(model, optimizer, scheduler, data: torch.Generator, steps: int) -> None:
    """Uses every RNG a loop may touch: the data generator, torch's (dropout), NumPy's and Python's."""
    model.train()
    for _ in range(steps):
        x = torch.randn(8, 4, generator=data)
        jitter = float(np.random.randn()) * 0.01 + random.random() * 0.01
        loss = (model(x + jitter) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    seed_everything(0)
    model, optimizer, scheduler = make_run(1)
    train(model, optimizer, scheduler, torch.Generator().manual_seed(123), 10)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    seed_everything(0)
    model, optimizer, scheduler = make_run(1)
    data = torch.Generator().manual_seed(123)
    train(model, optimizer, scheduler, data, 5)
    path = save_training_state(
        tmp_path, model_state=model.state_dict(), optimizer=optimizer, scheduler=scheduler, step=5, epoch=0,
        data_position={"generator": data.get_state(), "batches": 5}, extra={"note": "half way"},
    )  # fmt: skip
    assert path == tmp_path / "step_000005" and (tmp_path / "latest").read_text() == "step_000005\n"

    seed_everything(999)  # everything a new process would have differently
    model, optimizer, scheduler = make_run(2)
    state = load_training_state(tmp_path)
    assert (state.path, state.step, state.epoch, state.extra) == (path, 5, 0, {"note": "half way"})
    model.load_state_dict(state.model_state)
    optimizer.load_state_dict(state.optimizer)
    scheduler.load_state_dict(state.scheduler)
    restore_rng(state)
    data = torch.Generator()
    data.set_state(state.data_position["generator"])
    assert state.data_position["batches"] == 5
    train(model, optimizer, scheduler, data, 5)

    resumed = model.state_dict()
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    assert scheduler.last_epoch == 10


def test_rng_round_trip_covers_python_numpy_and_torch():
    seed_everything(5)
    saved = get_rng_state()
    first = (random.random(), np.random.randn(3).tolist(), torch.rand(3).tolist(), np.random.randint(1 << 30))
    seed_everything(6)
    restore_rng(saved)
    assert (random.random(), np.random.randn(3).tolist(), torch.rand(3).tolist(), np.random.randint(1 << 30)) == first


def save(directory: Path, step: int, **kwargs) -> Path:
    weights = {"w": torch.full((3, 2), float(step))}
    return save_training_state(
        directory, model_state=weights, optimizer=None, scheduler=None, step=step, epoch=step // 10,
        data_position={"index": step}, **kwargs,
    )  # fmt: skip


def test_pruning_resaving_a_step_and_rng_off(tmp_path):
    for step in (1, 2, 3, 4):
        save(tmp_path, step, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000003", "step_000004"]
    assert save(tmp_path, 4, keep=3).name == "step_000004.1"  # never replaces a checkpoint in place
    assert save(tmp_path, 4, keep=3).name == "step_000004.2"
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000004", "step_000004.1", "step_000004.2"]
    # a restarted run saving a lower step keeps that save (it is what `latest` names)
    save(tmp_path, 1, keep=1)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000001"]
    for step in (7, 8, 9):
        save(tmp_path, step, keep=None, rng=False)
    assert len(list_checkpoints(tmp_path)) == 4
    state = load_training_state(tmp_path)
    assert (state.step, state.epoch, state.data_position, state.rng) == (9, 0, {"index": 9}, None)
    assert torch.equal(state.model_state["w"], torch.full((3, 2), 9.0))
    with pytest.raises(ValueError, match="no RNG"):
        restore_rng(state)
    with pytest.raises(ValueError, match="keep"):
        save(tmp_path, 10, keep=0)


def test_unloadable_data_is_refused_before_anything_is_written(tmp_path):
    for bad, where in [({"index": np.int64(3)}, "index"), ({"sampler": object()}, "sampler"), ({"s": {1, 2}}, "s")]:
        with pytest.raises(TypeError, match=where):
            save_training_state(
                tmp_path / "run", model_state={}, optimizer=None, scheduler=None, step=0, epoch=0, data_position=bad
            )
    assert not (tmp_path / "run").exists()
    assert load_training_state(tmp_path / "run") is None


def test_leftovers_of_crashes_are_ignored_and_cleaned(tmp_path):
    save(tmp_path, 3)
    good = save(tmp_path, 5)
    # a save killed after writing everything but before its rename
    killed = tmp_path / ".tmp.step_000008.4242.abcd"
    killed.mkdir()
    for name in ("weights.safetensors", "state.pt", "complete.json"):
        (killed / name).write_bytes((good / name).read_bytes())
    # a directory someone copied without its marker, and one whose state file was truncated afterwards
    (tmp_path / "step_000009").mkdir()
    (tmp_path / "step_000009" / "state.pt").write_bytes(b"x")
    truncated = tmp_path / "step_000010"
    truncated.mkdir()
    for name in ("weights.safetensors", "complete.json"):
        (truncated / name).write_bytes((good / name).read_bytes())
    (truncated / "state.pt").write_bytes((good / "state.pt").read_bytes()[:100])
    assert not is_complete(truncated) and not is_complete(tmp_path / "step_000009") and is_complete(good)

    assert load_training_state(tmp_path).path == good
    (tmp_path / "latest").write_text("step_000077\n")  # names a checkpoint that is gone
    with pytest.warns(UserWarning, match="step_000005"):
        assert load_training_state(tmp_path).path == good
    # a checkpoint that passes the marker check but cannot be read falls back to an older one
    (tmp_path / "latest").write_text("step_000005\n")
    (good / "state.pt").write_bytes(b"\0" * (good / "state.pt").stat().st_size)
    with pytest.warns(UserWarning, match="unreadable"):
        assert load_training_state(tmp_path).step == 3

    save(tmp_path, 11, keep=10)
    assert not killed.exists()  # the next save removes leftovers of killed saves
    assert load_training_state(tmp_path).step == 11


CHILD = r"""
import sys
import torch
from torch import nn
from openbind.train import build_optimizer, load_training_state, save_training_state

directory = sys.argv[1]
model = nn.Linear(1024, 1024)  # 4 MB of weights, 8 MB of AdamW state
optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.1)
model(torch.randn(2, 1024)).sum().backward()
optimizer.step()
state = load_training_state(directory)
step = state.step + 1 if state is not None else 0
while True:
    with torch.no_grad():
        model.weight.fill_(step)
    print("saving", step, flush=True)
    save_training_state(directory, model_state=model.state_dict(), optimizer=optimizer, scheduler=None, step=step,
                        epoch=0, data_position={"step": step}, keep=2)
    step += 1
"""


def check_run_directory(directory: Path) -> int:
    """Every visible checkpoint is complete and self-consistent; `latest` names one. Returns the resume step."""
    visible = [p for p in directory.iterdir() if p.name.startswith("step_")]
    assert visible
    for path in visible:
        assert is_complete(path), path
        step = int(path.name.split("_")[1])
        state = torch.load(path / "state.pt", weights_only=True)
        assert state["step"] == step and state["data_position"] == {"step": step}
        assert set(state["optimizer"]["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
        assert torch.all(read_state_dict(path / "weights.safetensors")["weight"] == step)
    latest = (directory / "latest").read_text().strip()
    assert is_complete(directory / latest)
    resumed = load_training_state(directory)
    assert resumed.path.name == latest
    return resumed.step


def test_kill_9_at_random_moments_never_leaves_a_readable_partial_checkpoint(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    rng = random.Random(1234)
    resumed_steps, killed_mid_save = [], 0
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(run)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            target = rng.randint(1, 3)  # let it finish a few saves, then kill it somewhere in the next one
            while True:
                line = child.stdout.readline()
                assert line, child.stderr.read()
                if int(line.split()[1]) >= (resumed_steps[-1] + 1 if resumed_steps else 0) + target:
                    break
            time.sleep(rng.uniform(0.0, 0.12))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
            child.stderr.close()
        killed_mid_save += any(p.name.startswith(".tmp.") for p in run.iterdir())
        resumed_steps.append(check_run_directory(run))
    # every kill loses at most the save in progress: each resume point is past the previous one
    assert all(later > earlier for earlier, later in zip(resumed_steps, resumed_steps[1:]))
    print(f"kills that interrupted a save: {killed_mid_save}/3, resume steps {resumed_steps}")
