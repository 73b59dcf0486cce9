"""Training checkpoints that never lose a run: each save is a new directory that appears complete or not at all.

Layout of a run directory:

    latest                  text file: the name of the checkpoint to resume from
    step_000120/            weights.safetensors, state.pt, complete.json
    step_000150/
    .tmp.step_000180.<id>/  a save in progress (or killed); never read, removed by the next save

A save writes everything into a hidden temp directory, fsyncs it, writes `complete.json` (the sizes of the
files) last, renames the directory to `step_<step>` in one atomic step, then atomically rewrites `latest` and
prunes old checkpoints. Saving a step that already has a directory writes `step_<step>.1` (then `.2`, ...)
instead of replacing it. `state.pt` is read with `torch.load(weights_only=True)` only, so it holds plain
data: tensors, dicts, lists, tuples, numbers, strings, None (checked before anything is written).
Exactly one process (rank 0) may save into a run directory.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import shutil
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from openbind.utils import atomic_open, atomic_write_text, fsync_dir
from openbind.weights.checkpoint import read_state_dict, save_state_dict

WEIGHTS_FILE = "weights.safetensors"
STATE_FILE = "state.pt"
COMPLETE_FILE = "complete.json"
LATEST_FILE = "latest"
FORMAT_VERSION = 1

_CHECKPOINT_DIR = re.compile(r"^step_(\d+)(?:\.(\d+))?$")
_TMP_PREFIX = ".tmp."


@dataclass
class TrainingState:
    """One loaded checkpoint (`path` is its directory), not yet applied to anything.

    Resume with `model.load_state_dict(state.model_state)`, `optimizer.load_state_dict(state.optimizer)`,
    `scheduler.load_state_dict(state.scheduler)`, `restore_rng(state)` and the data position. The RNG states
    are those of the process that saved (rank 0): other ranks should reseed rather than restore them.
    """

    path: Path
    step: int
    epoch: int
    model_state: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    scheduler: dict[str, Any] | None
    data_position: dict[str, Any]
    rng: dict[str, Any] | None
    extra: dict[str, Any] | None


def get_rng_state() -> dict[str, Any]:
    """The global RNG states of Python `random`, NumPy, torch CPU and every CUDA device, as plain data."""
    version, internal, gauss = random.getstate()
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng(state: TrainingState | Mapping[str, Any]) -> None:
    """Put back the RNG states of a checkpoint (or of `get_rng_state()`), so random draws continue exactly.

    CUDA states are restored for the devices present in both the checkpoint and this machine.
    """
    rng = state.rng if isinstance(state, TrainingState) else state
    if rng is None:
        raise ValueError("this checkpoint holds no RNG state (it was saved with rng=False)")
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = rng["numpy"]
    keys = np_state["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        for device, cuda_state in enumerate(rng["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, device)


def _check_plain(value: Any, where: str) -> None:
    """Refuse, before writing, anything `torch.load(weights_only=True)` could not read back."""
    if value is None or isinstance(value, (torch.Tensor, str, bool, int, float)):
        return
    if type(value) in (dict, OrderedDict):
        for key, item in value.items():
            if not (key is None or isinstance(key, (str, int, float, bool))):
                raise TypeError(f"{where}: the key {key!r} cannot be stored in {STATE_FILE}")
            _check_plain(item, f"{where}[{key!r}]")
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where}: a {type(value).__name__} cannot be stored in {STATE_FILE} (it is read with weights_only=True); "
        "convert it to a tensor, number, string, list or dict"
    )


def _sort_key(path: Path) -> tuple[int, int]:
    step, k = _CHECKPOINT_DIR.match(path.name).groups()  # type: ignore[union-attr]
    return int(step), int(k or 0)


def is_complete(path: str | Path) -> bool:
    """Whether `path` is a finished checkpoint: its marker exists and every file has the recorded size."""
    path = Path(path)
    try:
        marker = json.loads((path / COMPLETE_FILE).read_text())
        return all((path / name).stat().st_size == size for name, size in marker["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def list_checkpoints(directory: str | Path) -> list[Path]:
    """The complete checkpoint directories of a run, oldest first (by step, then by save order)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if _CHECKPOINT_DIR.match(p.name) and p.is_dir() and is_complete(p)]
    return sorted(found, key=_sort_key)


def _free_name(directory: Path, step: int) -> str:
    name = f"step_{step:06d}"
    k = 0
    while (directory / name).exists():
        k += 1
        name = f"step_{step:06d}.{k}"
    return name


def save_training_state(
    directory: str | Path,
    *,
    model_state: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    step: int,
    epoch: int,
    data_position: dict[str, Any],
    rng: bool = True,
    extra: dict[str, Any] | None = None,
    keep: int | None = 3,
) -> Path:
    """Write a complete checkpoint of the run into `directory` and point `latest` at it; returns its path.

    model_state: the tensors to keep (e.g. only the trained encoder's state dict), saved as safetensors.
    data_position: where the data pipeline stands (epoch offset, sample index, sampler seed...), plain data.
    rng: also save the global RNG states (`get_rng_state()`). extra: any other plain data.
    keep: how many complete checkpoints to keep (the one just written always stays); None keeps all.
    """
    if keep is not None and keep < 1:
        raise ValueError(f"keep must be >= 1 or None, got {keep}")
    payload = {
        "format": FORMAT_VERSION,
        "step": int(step),
        "epoch": int(epoch),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "data_position": data_position,
        "rng": get_rng_state() if rng else None,
        "extra": extra,
    }
    _check_plain(payload, "state")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = _free_name(directory, int(step))
    tmp = directory / f"{_TMP_PREFIX}{name}.{os.getpid()}.{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        save_state_dict({k: v.detach().cpu() for k, v in model_state.items()}, tmp / WEIGHTS_FILE)
        with atomic_open(tmp / STATE_FILE, "wb") as f:
            torch.save(payload, f)
        sizes = {n: (tmp / n).stat().st_size for n in (WEIGHTS_FILE, STATE_FILE)}
        with atomic_open(tmp / COMPLETE_FILE, "w") as f:
            json.dump({"step": int(step), "epoch": int(epoch), "files": sizes}, f)
        fsync_dir(tmp)
        os.rename(tmp, directory / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(directory)
    atomic_write_text(directory / LATEST_FILE, name + "\n")
    fsync_dir(directory)
    _prune(directory, keep, protect=name)
    return directory / name


def _prune(directory: Path, keep: int | None, protect: str) -> None:
    """Remove leftovers of killed saves and all but the newest `keep` checkpoints (never `protect`)."""
    doomed = [p for p in directory.iterdir() if p.name.startswith(_TMP_PREFIX) and p.is_dir()]
    if keep is not None:
        old = [p for p in list_checkpoints(directory) if p.name != protect]
        doomed += old[: max(0, len(old) - (keep - 1))]
    for path in doomed:
        if not path.name.startswith(_TMP_PREFIX):  # hide it first: a half-deleted checkpoint is never seen
            hidden = directory / f"{_TMP_PREFIX}{path.name}.deleted.{secrets.token_hex(4)}"
            os.rename(path, hidden)
            path = hidden
        shutil.rmtree(path, ignore_errors=True)


def _latest_pointer(directory: Path) -> str | None:
    try:
        return (directory / LATEST_FILE).read_text().strip() or None
    except OSError:
        return None


def _read(path: Path) -> TrainingState:
    payload = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    return TrainingState(
        path=path,
        step=payload["step"],
        epoch=payload["epoch"],
        model_state=read_state_dict(path / WEIGHTS_FILE),
        optimizer=payload["optimizer"],
        scheduler=payload["scheduler"],
        data_position=payload["data_position"],
        rng=payload["rng"],
        extra=payload["extra"],
    )


def load_training_state(directory: str | Path) -> TrainingState | None:
    """The checkpoint to resume a run from, or None when `directory` holds no complete checkpoint.

    Reads the one `latest` names; when that is missing, incomplete or unreadable, the newest complete one that
    reads (with a warning). Temp directories and directories without a valid `complete.json` are ignored.
    Nothing is applied: see `TrainingState` for how to restore model, optimizer, scheduler and RNG.
    """
    directory = Path(directory)
    candidates = list_checkpoints(directory)[::-1]
    pointer = _latest_pointer(directory)
    preferred = [p for p in candidates if p.name == pointer]
    if candidates and not preferred:
        warnings.warn(f"{directory}/{LATEST_FILE} names no complete checkpoint; resuming from {candidates[0].name}")
    for path in preferred + [p for p in candidates if p.name != pointer]:
        try:
            return _read(path)
        except Exception as error:  # a damaged checkpoint must not hide the older good ones
            warnings.warn(f"skipping unreadable checkpoint {path}: {error}")
    return None
