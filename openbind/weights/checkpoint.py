"""Reading and writing checkpoints safely: `.pth` only with `weights_only=True`, safetensors memory-mapped.

An openbind checkpoint directory holds `config.json` and `model.safetensors` (all modalities) and/or one
`<modality>.safetensors` per modality, so a text+audio model reads only those two files.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from openbind.config import ModelConfig
from openbind.errors import CheckpointError
from openbind.utils import atomic_path

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def read_state_dict(path: str | Path, keep: Callable[[str], bool] | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a `.safetensors` or `.pth`/`.pt` file whose key passes `keep` (all by default).

    Safetensors are memory-mapped and only the kept tensors are read. `.pth` files are opened with
    `weights_only=True` (a pickle that would run code is refused) and memory-mapped when possible.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a file")
    keep = keep or (lambda key: True)
    if path.suffix == ".safetensors":
        return _read_safetensors(path, keep)
    return {k: v for k, v in _read_pth(path).items() if keep(k)}


def _read_safetensors(path: Path, keep: Callable[[str], bool]) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys() if keep(k)}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({error}); it may be truncated or corrupt: "
            "download or convert it again"
        ) from error


def _read_pth(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as error:
        globals_ = [line.strip() for line in str(error).splitlines() if "GLOBAL" in line]
        if globals_:  # the pickle names a Python callable: loading it would run code
            raise CheckpointError(
                f"{path} was refused: loading it would run code from the pickle ({globals_[0]}); openbind only "
                "reads plain tensor checkpoints. Convert it with a trusted tool or use safetensors."
            ) from error
        raise CheckpointError(f"{path} is not a PyTorch checkpoint; it may be truncated or corrupt") from error
    except Exception as error:  # garbage bytes make the unpickler raise anything (IndexError, KeyError, ...)
        raise CheckpointError(
            f"{path} could not be read as a PyTorch checkpoint ({str(error).splitlines()[0]}); it may be "
            "truncated or corrupt: download it again"
        ) from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return state


def save_state_dict(state_dict: dict[str, torch.Tensor], path: str | Path) -> None:
    """Write a safetensors file atomically (temp file + rename)."""
    tensors = {k: v.detach().contiguous() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def save_checkpoint(
    state_dict: dict[str, torch.Tensor],
    config: ModelConfig,
    directory: str | Path,
    *,
    whole: bool = True,
    per_modality: bool = False,
) -> list[Path]:
    """Write `config.json` and the weights (one file, and/or one file per modality) into `directory`."""
    directory = Path(directory)
    written = []
    config.to_json(directory / CONFIG_NAME)
    written.append(directory / CONFIG_NAME)
    if whole:
        save_state_dict(state_dict, directory / WEIGHTS_NAME)
        written.append(directory / WEIGHTS_NAME)
    if per_modality:
        for modality in config.encoders:
            prefix = f"encoders.{modality}."
            part = {k: v for k, v in state_dict.items() if k.startswith(prefix)}
            save_state_dict(part, directory / f"{modality}.safetensors")
            written.append(directory / f"{modality}.safetensors")
    return written


def checkpoint_files(directory: Path, modalities: Iterable[str]) -> list[Path]:
    """The files of a checkpoint directory that hold `modalities`: per-modality files when all exist."""
    per_modality = [directory / f"{m}.safetensors" for m in modalities]
    if all(p.is_file() for p in per_modality):
        return per_modality
    if (directory / WEIGHTS_NAME).is_file():
        return [directory / WEIGHTS_NAME]
    raise CheckpointError(
        f"{directory} has neither {WEIGHTS_NAME} nor per-modality files for {list(modalities)}"
    )
