"""What the endpoints call: an open index, its model, the batcher, a pool that decodes uploads and one that runs
index calls (searches, item lookups), both off the event loop."""

from __future__ import annotations

import asyncio
import functools
import mimetypes
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from openbind.errors import OpenBindInputError
from openbind.modalities import get_input, input_names, modality_of
from openbind.serve.batching import Batcher, BatchSettings
from openbind.serve.limits import Limits, check_upload


@dataclass(frozen=True)
class Term:
    """One query term: an input `kind` with its `value` (a text, or an upload's bytes), or an indexed item
    (`kind` "item", `value` its id); `name` says which input it was, for error messages."""

    kind: str
    value: Any
    weight: float
    name: str


ITEM = "item"


class SearchService:
    """An index folder served: `start()` opens it and loads its model (or takes `model`, a loaded model object
    with `.config`, `.modalities` and `.encode`, or a path checked against the index's fingerprint)."""

    def __init__(
        self,
        index_path: str | os.PathLike,
        model: Any = None,
        *,
        batching: BatchSettings = BatchSettings(),
        limits: Limits = Limits(),
        decode_workers: int = 2,
        threads: int = 1,
        device: str | None = None,
        precision: str = "fp32",
        runtime: str | None = None,
        on_batch: Callable[[str, int], None] = lambda modality, size: None,
        on_queue: Callable[[str, int], None] = lambda modality, depth: None,
    ):
        if decode_workers < 1:
            raise ValueError(f"decode_workers must be >= 1, got {decode_workers}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        self._threads_before: int | None = None
        self.index_path = Path(index_path)
        self.limits = limits
        self._model_arg = model
        self._device = device
        self._runtime = {"precision": precision, "runtime": runtime}
        self._index_threads = ThreadPoolExecutor(2, thread_name_prefix="openbind-index")
        self._decoders = ThreadPoolExecutor(decode_workers, thread_name_prefix="openbind-decode")
        self.batcher = Batcher(self._encode, batching, on_batch, on_queue)
        self.index = None
        self.model = None
        self.roots: list[Path] = []
        self._transforms: dict[str, Callable[[Any], torch.Tensor]] = {}
        # The media link and type of each result, by (id, path): resolving a path's symlinks costs system calls
        # per result (a fifth of a text search's server CPU, measured). Serving a file checks it afresh.
        self._media_of = functools.lru_cache(maxsize=65_536)(self._find_media)

    # ---- lifetime

    async def start(self) -> None:
        """Open the index and load the model, and set torch's threads per forward pass to `threads`.

        One thread by default: the server already runs requests in parallel (decoding, the towers' threads,
        searches), and OpenMP teams inside each forward pass on top of that oversubscribe the cores; their
        workers spin while they wait for each other, at several times the CPU per request (docs/benchmarks.md)."""
        self._threads_before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        await self._on_index(self._open)

    def _open(self) -> None:
        from openbind.search import Index

        model_path = self._model_arg if isinstance(self._model_arg, (str, os.PathLike)) else None
        on_cpu = self._runtime["precision"] == "int8" or self._runtime["runtime"] == "onnx"
        device = self._device or ("cuda" if torch.cuda.is_available() and not on_cpu else "cpu")
        self.index = Index.open(self.index_path, model=model_path, device=device, **self._runtime)
        if model_path is None and self._model_arg is not None:
            self.model = self._model_arg
            if isinstance(self.model, torch.nn.Module):
                self.model.to(device)
        else:
            self.model = self.index.model_for(set(self.index.meta["model"]["modalities"]))
        if isinstance(self.model, torch.nn.Module):
            self.model.eval()
        self.roots = [_root_of(source) for source in self.index.meta["sources"]]

    @property
    def ready(self) -> bool:
        return self.model is not None

    def close(self) -> None:
        self.batcher.close()
        self._decoders.shutdown(wait=False, cancel_futures=True)
        self._index_threads.shutdown(wait=True)
        if self.index is not None:
            self.index.close()
        if self._threads_before is not None:
            torch.set_num_threads(self._threads_before)

    # ---- what it can do

    async def info(self) -> dict[str, Any]:
        """The towers, the input kinds they read (with file suffixes) and the limits: what the page shows."""
        towers = set(self.model.modalities)
        kinds = [
            {"name": name, "modality": modality_of(name).name, "files": get_input(name).holds_files,
             "suffixes": list(get_input(name).suffixes)}
            for name in input_names() if modality_of(name).name in towers
        ]  # fmt: skip
        count = await self._on_index(lambda: len(self.index))
        return {"items": count, "embed_dim": self.index.meta["model"]["embed_dim"], "kinds": kinds,
                "max_k": self.limits.max_k, "max_terms": self.limits.max_terms}  # fmt: skip

    # ---- embedding

    def kind_for(self, kind: str, name: str) -> str:
        """The input kind `kind` names, checked to have a tower in this model."""
        try:
            found = get_input(kind).name
        except KeyError:
            raise OpenBindInputError(name, f"unknown input kind {kind!r}; this server reads {self._kinds()}") from None
        if modality_of(found).name not in self.model.modalities:
            raise OpenBindInputError(name, f"this server's model has no tower for {found!r}; it reads {self._kinds()}")
        return found

    async def embed(self, kind: str, values: Sequence[Any], names: Sequence[str]) -> torch.Tensor:
        """[N, D] unit embeddings of texts or uploads of one input kind (each upload checked against the limits,
        decoded in the pool, then batched with other requests' items)."""
        loop = asyncio.get_running_loop()
        if get_input(kind).batched:  # the tokenizer: one call for the whole list
            inputs = await loop.run_in_executor(self._decoders, self._decode, kind, list(values), names[0])
        else:
            parts = await asyncio.gather(*(
                loop.run_in_executor(self._decoders, self._decode, kind, [value], name)
                for value, name in zip(values, names)
            ))  # fmt: skip
            inputs = torch.cat(parts)
        return await self.batcher.embed(modality_of(kind).name, inputs)

    def _decode(self, kind: str, values: list[Any], name: str) -> torch.Tensor:
        """Model inputs of texts (the tokenizer takes the list) or of one upload (its kind's transform)."""
        from openbind import preprocess

        options = self.model.config.input_options(kind)
        try:
            if get_input(kind).batched:
                return preprocess.load(kind, values, **options)
            check_upload(name, kind, values[0], self.limits)
            if kind not in self._transforms:
                self._transforms[kind] = preprocess.transform_for(kind, **options)
            return self._transforms[kind](values[0]).unsqueeze(0)
        except OpenBindInputError as error:
            raise type(error)(name, error.reason) from None

    def _encode(self, modality: str, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if isinstance(self.model, torch.nn.Module):
                batch = batch.to(next(self.model.parameters()).device)
            return self.model.encode(modality, batch).float().cpu()

    # ---- searching

    async def search(self, terms: Sequence[Term], k: int, modalities: Sequence[str] | None) -> list[dict[str, Any]]:
        """Results of weighted terms (ImageBind's embedding arithmetic), the query's own items (named, or
        uploaded files the index holds) left out."""
        vectors = await asyncio.gather(*(self._term_vector(term) for term in terms))
        total = sum(term.weight * vector for term, vector in zip(terms, vectors))
        if float(np.linalg.norm(total)) < 1e-6:
            raise OpenBindInputError("query", "the query terms cancel out (their weighted sum is zero)")
        own = {int(term.value) for term in terms if term.kind == ITEM}
        uploads = [term.value for term in terms if isinstance(term.value, bytes)]
        return await self._on_index(lambda: self._search(total, k, modalities, own, uploads))

    def _search(
        self, vector: np.ndarray, k: int, modalities: Sequence[str] | None, own: set[int], uploads: list[bytes]
    ) -> list[dict[str, Any]]:
        """The results, leaving out the items named in the query and the indexed copies of uploaded files."""
        own = own.union(*(self.index.items_with_content(data) for data in uploads))
        results = self.index.search(vector, k, modalities or None, exclude=own)
        return [{"id": r.id, "path": r.path, "modality": r.modality, "score": r.score, **self._media_of(r.id, r.path)}
                for r in results]  # fmt: skip

    async def _term_vector(self, term: Term) -> np.ndarray:
        if term.kind == ITEM:
            stored = await self._on_index(lambda: self._item_vectors(term.value, term.name))
            mean = np.mean(np.stack(list(stored.values())).astype(np.float32), axis=0)
            return mean / max(float(np.linalg.norm(mean)), 1e-12)
        return (await self.embed(term.kind, [term.value], [term.name]))[0].numpy()

    def _item_vectors(self, item: int, name: str) -> dict[str, np.ndarray]:
        try:
            return self.index.item_vectors(item)
        except OpenBindInputError:
            raise OpenBindInputError(name, f"no item {item} in the index") from None

    def check_modalities(self, names: Sequence[str]) -> list[str]:
        from openbind.modalities import all_modalities

        known = set(input_names()) | set(all_modalities())
        for name in names:
            if not isinstance(name, str) or name not in known:
                raise OpenBindInputError(name, f"not an input kind or modality; filter by {sorted(known)}")
        return list(names)

    # ---- items

    async def item(self, item: int) -> dict[str, Any]:
        """One item's metadata; KeyError for an unknown id."""
        return await self._on_index(lambda: self._item(item))

    def _item(self, item: int) -> dict[str, Any]:
        row = self.index.item(item)
        kinds = [kind for kind in row["kinds"].split(",") if kind]
        return {"id": row["id"], "path": row["path"], "kind": row["kind"], "kinds": kinds, "size": row["size"],
                "status": row["status"], "error": row["error"], **self._media_of(row["id"], row["path"])}  # fmt: skip

    async def media_path(self, item: int) -> Path:
        """The file of an item, if it lies inside one of the index's source folders (symlinks resolved)."""
        path = Path((await self.item(item))["path"]).resolve()
        if not self._servable(path):
            raise PermissionError(f"item {item}'s file is outside the index's source folders; it is not served")
        if not path.is_file():
            raise FileNotFoundError(f"item {item}'s file is gone from the disk")
        return path

    def _servable(self, path: Path) -> bool:
        return any(path.is_relative_to(root) for root in self.roots)

    def _find_media(self, item: int, path: str) -> dict[str, str | None]:
        """Where the page fetches an item's file (None: not served, outside the index's folders), and its content
        type (which tells the page how to preview it). Read through `_media_of`, a cache."""
        media = f"/v1/items/{item}/media" if self._servable(Path(path).resolve()) else None
        return {"media": media, "media_type": mimetypes.guess_type(path)[0] or "application/octet-stream"}

    def _kinds(self) -> list[str]:
        return [name for name in input_names() if modality_of(name).name in self.model.modalities]

    async def _on_index(self, call: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._index_threads, call)


def _root_of(source: dict[str, Any]) -> Path:
    """The folder whose files an index source may hold: a folder source itself, a manifest's own folder."""
    return Path(source["folder"]).resolve() if "folder" in source else Path(source["manifest"]).resolve().parent
