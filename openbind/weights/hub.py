"""Download and cache model checkpoints with the standard library only.

Checkpoints are gigabytes, links drop and several processes (every rank of a distributed job) may ask for the
same file at once, so downloads resume from a ``<dest>.part`` file with HTTP Range requests, are checked against
the announced size and an optional sha256, and reach ``dest`` only by an atomic rename once they check out.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import posixpath
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from openbind.errors import CheckpointError, OpenBindInputError
from openbind.utils import fsync_dir

KNOWN_CHECKPOINTS: dict[str, str] = {
    "imagebind_huge": "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth",
}
"""Names ``resolve_checkpoint`` accepts when no ``known`` mapping is passed, mapped to their URLs."""

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def cache_dir() -> Path:
    """Where downloaded checkpoints live: ``$OPENBIND_CACHE`` as given, else ``$XDG_CACHE_HOME/openbind``, else
    ``~/.cache/openbind`` (a relative ``XDG_CACHE_HOME`` is ignored, as the XDG spec asks). Created on demand."""
    override = os.environ.get("OPENBIND_CACHE")
    if override:
        path = Path(override).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
        path = base / "openbind"
    path.mkdir(parents=True, exist_ok=True)
    return path


def download(
    url: str,
    dest: str | Path | None = None,
    *,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
) -> Path:
    """Fetch ``url`` to ``dest`` (default: ``cache_dir() / <file name in the URL>``) and return ``dest``.

    An existing ``dest`` (matching ``sha256`` when given) is returned without touching the network; one that does
    not match is downloaded again. ``file://`` URLs and plain local paths are not copied: the path itself is
    returned once it exists (and matches ``sha256``). Raises ``CheckpointError`` with what to do next.
    """
    expected = _normalise_sha256(sha256)
    local = _local_path(url)
    if local is not None:
        if not local.is_file():
            raise CheckpointError(f"{url}: no such file; pass the path of an existing checkpoint file")
        _check_local(local, expected)
        return local
    target = Path(dest).expanduser() if dest is not None else cache_dir() / _url_file_name(url)
    if _is_ready(target, expected):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target):
        # Another process may have finished the same download while this one waited for the lock.
        if _is_ready(target, expected):
            return target
        _download_verified(url, target, expected, progress, timeout, chunk_size)
    return target


def resolve_checkpoint(
    pretrained: str | Path,
    *,
    known: Mapping[str, str] | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Turn what a user passes as ``pretrained`` into a local file: an existing path as is, an http(s) or
    ``file://`` URL downloaded into the cache, or a name from ``known`` (default ``KNOWN_CHECKPOINTS``) by its URL.
    """
    names = KNOWN_CHECKPOINTS if known is None else known
    text = os.fspath(pretrained)
    path = Path(text).expanduser()
    if path.exists():
        if path.is_file():
            _check_local(path, _normalise_sha256(sha256))
        return path
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    if scheme in ("http", "https", "file"):
        return download(text, sha256=sha256, progress=progress)
    if isinstance(pretrained, str) and pretrained in names:
        return download(names[pretrained], sha256=sha256, progress=progress)
    listed = ", ".join(sorted(names)) or "none"
    raise CheckpointError(
        f"{text!r} is neither an existing file, an http(s)/file URL, nor a known checkpoint name "
        f"(known names: {listed})"
    )


@dataclass(frozen=True)
class _Transfer:
    """What one request left in the .part file: the full size the server announced (if any) and the sha256 of
    the whole .part (when a hash is expected)."""

    total: int | None
    digest: str | None


def _download_verified(
    url: str, dest: Path, expected: str | None, progress: bool, timeout: float, chunk_size: int
) -> None:
    part = dest.with_name(dest.name + ".part")
    transfer = _transfer(url, part, dest.name, expected is not None, progress, timeout, chunk_size)
    if transfer is None:
        # The server could not continue the partial file (bad range, 416 for a foreign .part): start over once.
        part.unlink(missing_ok=True)
        transfer = _transfer(url, part, dest.name, expected is not None, progress, timeout, chunk_size)
    if transfer is None:
        raise CheckpointError(
            f"{url}: the server answered a fresh download with a partial range; download the checkpoint "
            "another way and pass its local path instead"
        )
    size = part.stat().st_size
    if transfer.total is not None and size < transfer.total:
        raise _interrupted(url, part, f"the connection closed after {size} of {transfer.total} bytes")
    if transfer.total is not None and size > transfer.total:
        part.unlink(missing_ok=True)
        raise CheckpointError(
            f"{url}: got {size} bytes but the server announced {transfer.total}; the partial file was "
            "deleted, re-run to download it again"
        )
    if expected is not None and transfer.digest != expected:
        part.unlink(missing_ok=True)
        raise CheckpointError(
            f"{url}: the download has sha256 {transfer.digest}, expected {expected}; it was deleted. Re-run to "
            "download it again; if this repeats, the file on the server differs from the expected one (check "
            "the hash), or download it yourself and pass its local path"
        )
    os.replace(part, dest)
    fsync_dir(dest.parent)


def _transfer(
    url: str, part: Path, label: str, hashing: bool, progress: bool, timeout: float, chunk_size: int
) -> _Transfer | None:
    """Extend ``part`` towards the whole file with one request; ``None`` when it must be restarted from zero."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "openbind", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        with exc:
            unsatisfied = _UNSATISFIED_RANGE.fullmatch(exc.headers.get("Content-Range", "").strip())
        if exc.code == 416 and offset:
            if unsatisfied and int(unsatisfied[1]) == offset:
                return _Transfer(offset, _file_sha256(part, offset) if hashing else None)
            return None
        raise CheckpointError(
            f"{url}: the server answered HTTP {exc.code} {exc.reason}; check the URL, or download the "
            "checkpoint yourself and pass its local path instead"
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _interrupted(url, part, exc) from exc
    with response:
        if response.status == 206:
            span = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if span is None or int(span[1]) != offset:
                return None
            total = None if span[3] == "*" else int(span[3])
        else:
            # A plain 200: the server ignored the Range header and sends the whole file, so drop the prefix.
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        hasher = hashlib.sha256() if hashing else None
        if hasher is not None and offset:
            _update_from_file(hasher, part, offset)
        with open(part, "ab" if offset else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
            disable=not progress,
        ) as bar:
            while True:
                try:
                    # read1 returns what has arrived, so a stalled link times out without losing buffered bytes.
                    chunk = response.read1(chunk_size)
                except (OSError, http.client.HTTPException) as exc:
                    out.flush()
                    raise _interrupted(url, part, exc) from exc
                if not chunk:
                    break
                out.write(chunk)
                if hasher is not None:
                    hasher.update(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    return _Transfer(total, hasher.hexdigest() if hasher is not None else None)


def _update_from_file(hasher: hashlib._Hash, path: Path, size: int) -> None:
    """Feed the first ``size`` bytes of ``path`` to ``hasher``: a resumed download's hash must cover what is
    already on disk, not only what this request brings."""
    with open(path, "rb") as handle:
        while size > 0:
            block = handle.read(min(size, 1 << 20))
            if not block:
                return
            hasher.update(block)
            size -= len(block)


def _file_sha256(path: Path, size: int | None = None) -> str:
    hasher = hashlib.sha256()
    _update_from_file(hasher, path, path.stat().st_size if size is None else size)
    return hasher.hexdigest()


def _is_ready(path: Path, expected: str | None) -> bool:
    return path.is_file() and (expected is None or _file_sha256(path) == expected)


def _check_local(path: Path, expected: str | None) -> None:
    if expected is None:
        return
    actual = _file_sha256(path)
    if actual != expected:
        raise CheckpointError(
            f"{path}: sha256 is {actual}, expected {expected}; the file is corrupt or a different version, "
            "replace it with the right checkpoint"
        )


def _interrupted(url: str, part: Path, cause: object) -> CheckpointError:
    kept = part.stat().st_size if part.exists() else 0
    if kept:
        state = f"The partial download was kept in {part} ({kept} bytes); re-running resumes it"
    else:
        state = "Nothing was downloaded yet; re-run to try again"
    return CheckpointError(
        f"downloading {url} failed ({cause}). {state}. Alternatively, download the file yourself and pass its "
        "local path instead"
    )


def _normalise_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if not _SHA256.fullmatch(value):
        raise OpenBindInputError(sha256, "sha256 must be 64 hexadecimal characters")
    return value


def _local_path(url: str) -> Path | None:
    """The file a ``file://`` URL or a plain path names; ``None`` for http(s), which must be downloaded."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return None
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise CheckpointError(f"{url}: file URLs on another host are not supported; mount it and pass a path")
        return Path(urllib.request.url2pathname(parts.path))
    if scheme and len(scheme) > 1:  # one letter is a Windows drive, i.e. a plain path
        raise CheckpointError(f"{url}: unsupported URL scheme {scheme!r}; use http(s), file, or a local path")
    return Path(url).expanduser()


def _url_file_name(url: str) -> str:
    name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    if not name or name in (".", ".."):
        raise CheckpointError(f"{url}: the URL names no file, so pass dest= to say where to save it")
    return name


@contextlib.contextmanager
def _exclusive(dest: Path) -> Iterator[None]:
    """Hold an OS lock on ``<dest>.lock`` so concurrent callers (all ranks of a job) let one download while the
    others wait and then reuse its file, instead of appending to one .part together. The lock dies with its
    process; where ``fcntl`` is missing (Windows) downloads are not serialised."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(dest.with_name(dest.name + ".lock"), "ab") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
