"""`OnnxModel`: the towers of an ONNX export (`openbind export onnx`) on onnxruntime, with the torch model's
embedding interface, so embedding, evaluation, indexes and serving run on it unchanged."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from openbind.config import ModelConfig
from openbind.errors import OpenBindInputError
from openbind.model.encoder import trim_padding
from openbind.model.imagebind import embed_inputs, split_clips
from openbind.weights.checkpoint import CONFIG_NAME

RECORD_NAME = "onnx.json"  # the export record: precision, and per tower its file, scale and checked cosines
FORMAT = "openbind-onnx-1"
INPUT_NAME = "x"
OUTPUT_NAME = "unit_embedding"
# The shortest text an export takes: torch.export treats a dimension of size 1 as a constant, so shorter token
# sequences are zero-padded to this length (padding after EOT never reaches the pooled token of a causal tower).
MIN_TEXT_LENGTH = 2


def is_onnx_export(path: str | Path) -> bool:
    """Whether `path` is a directory written by `openbind export onnx`."""
    return (Path(path) / RECORD_NAME).is_file()


def exported_from(path: str | Path) -> str | None:
    """The fingerprint of the model directory an export was made from (None: not an export, or not recorded)."""
    return read_record(path).get("source_fingerprint") if is_onnx_export(path) else None


def read_record(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / RECORD_NAME
    if not path.is_file():
        raise ValueError(f"{directory} is not an ONNX export (no {RECORD_NAME}; write one with `openbind export onnx`)")
    record = json.loads(path.read_text())
    if record.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown export format {record.get('format')!r} (expected {FORMAT!r})")
    return record


class OnnxModel:
    """Inference only, on the CPU: `config`, `modalities`, `device`, `encode(modality, x)`, `embed(...)`,
    `logit_scale(modality)`, and `eval()`/`train(False)` so code written for the torch model needs no change.
    A tower's onnxruntime session is created on first use."""

    training = False

    def __init__(self, directory: str | Path, modalities: Sequence[str] | None = None, *, threads: int | None = None):
        self.directory = Path(directory)
        record = read_record(self.directory)
        self.config = ModelConfig.from_json(self.directory / CONFIG_NAME).subset(
            list(modalities) if modalities is not None else None
        )
        missing = [m for m in self.config.modalities if m not in record["towers"]]
        if missing:
            raise ValueError(f"{self.directory}: no exported graph for {missing} (it has {sorted(record['towers'])})")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.precision: str = record["precision"]
        self.towers: dict[str, dict[str, Any]] = {m: record["towers"][m] for m in self.config.modalities}
        self.threads = threads
        self._sessions: dict[str, Any] = {}

    @property
    def modalities(self) -> list[str]:
        return self.config.modalities

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def eval(self) -> OnnxModel:
        return self

    def train(self, mode: bool = True) -> OnnxModel:
        if mode:
            raise ValueError("an ONNX model runs inference only: train the torch model, then export it")
        return self

    def logit_scale(self, modality: str) -> float:
        scale = self._tower(modality)["scale"]
        return 1.0 if scale is None else float(scale)

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Unit-norm float32 embeddings of a model-ready tensor; clips are averaged, then renormalized."""
        self._tower(modality)
        config = self.config.encoders[modality]
        items, clips = split_clips(modality, config, x)
        if items.shape[0] == 0:
            return torch.empty(0, self.config.embed_dim)
        items = config.export_input(trim_padding(config, items.detach().cpu()))
        if config.pool == "eos" and items.shape[1] < MIN_TEXT_LENGTH:
            items = F.pad(items, (0, MIN_TEXT_LENGTH - items.shape[1]))
        session = self._session(modality)
        feed = np.ascontiguousarray(items.numpy(), dtype=self.towers[modality]["input_dtype"])
        try:
            (out,) = session.run(None, {INPUT_NAME: feed})
        except Exception as error:  # onnxruntime raises its own classes for shape and type mismatches
            raise OpenBindInputError(
                x, f"{modality} input of shape {tuple(items.shape)} does not fit the exported graph: {error}"
            ) from error
        embedding = torch.from_numpy(out).float()
        if clips is not None:
            embedding = F.normalize(embedding.view(-1, clips, embedding.shape[-1]).mean(dim=1), dim=-1)
        return embedding

    def embed(self, inputs: Mapping[str, Any] | None = None, /, **kwargs: Any) -> dict[str, torch.Tensor]:
        """`ImageBind.embed`: raw items or tensors per input kind -> unit-norm embeddings."""
        return embed_inputs(self, {**(inputs or {}), **kwargs})

    def _tower(self, modality: str) -> dict[str, Any]:
        if modality not in self.towers:
            raise KeyError(f"this model has no {modality!r} encoder (it has {self.modalities})")
        return self.towers[modality]

    def _session(self, modality: str) -> Any:
        if modality not in self._sessions:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            if self.threads is not None:
                options.intra_op_num_threads = self.threads
            path = self.directory / self._tower(modality)["file"]
            self._sessions[modality] = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        return self._sessions[modality]
