"""What the server accepts: request and upload sizes, image pixels, seconds of sound and video, texts, k, time and
concurrency; and the checks of uploads made before anything is decoded (headers only).

Size limits are per input kind (`max_file_bytes_by_kind` overrides `max_file_bytes`); pixels and seconds hold for
every upload whose header declares them (images and depth/thermal maps declare pixels; sound and video declare a
duration, video frames their pixels), so a new modality's files are covered without a list of modalities here.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field

from openbind.errors import OpenBindInputError
from openbind.modalities import get_input

MIB = 1 << 20


class LimitExceeded(OpenBindInputError):
    """An input over one of the server's limits (answered 413)."""


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 64 * MIB
    max_file_bytes: int = 25 * MIB
    max_file_bytes_by_kind: dict[str, int] = field(default_factory=dict)
    max_pixels: int = 40_000_000
    max_seconds: float = 600.0
    max_files: int = 8
    max_texts: int = 64
    max_text_chars: int = 2000
    max_terms: int = 16
    max_k: int = 1000
    timeout_s: float = 30.0
    max_concurrent: int = 64

    def __post_init__(self) -> None:
        for name in ("max_request_bytes", "max_file_bytes", "max_pixels", "max_files", "max_texts", "max_text_chars",
                     "max_terms", "max_k", "max_concurrent"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_seconds", "timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for kind, size in self.max_file_bytes_by_kind.items():
            if size < 1:
                raise ValueError(f"the upload limit of {kind!r} must be >= 1 byte, got {size}")

    def file_bytes(self, kind: str) -> int:
        return self.max_file_bytes_by_kind.get(kind, self.max_file_bytes)


def parse_upload_limits(values: list[str], default: int = Limits.max_file_bytes) -> tuple[int, dict[str, int]]:
    """`["30", "video=200"]` (MB) -> (30 MiB, {"video": 200 MiB}); kinds are checked against the registry."""
    by_kind: dict[str, int] = {}
    for value in values:
        kind, sep, size = value.rpartition("=")
        try:
            megabytes = float(size)
        except ValueError:
            raise ValueError(f"--max-upload-mb takes MB or KIND=MB, got {value!r}") from None
        if not megabytes > 0:
            raise ValueError(f"--max-upload-mb must be > 0, got {value!r}")
        if sep:
            try:
                by_kind[get_input(kind).name] = int(megabytes * MIB)
            except KeyError as error:
                raise ValueError(str(error).strip('"')) from None
        else:
            default = int(megabytes * MIB)
    return default, by_kind


def check_upload(name: str, kind: str, data: bytes, limits: Limits) -> None:
    """Refuse an upload over the size limit of its kind, or whose header declares more pixels or seconds than
    allowed (a decompression bomb is refused here, before its pixels are decoded)."""
    if not data:
        raise OpenBindInputError(name, "empty upload (0 bytes)")
    if len(data) > limits.file_bytes(kind):
        raise LimitExceeded(name, f"{len(data)} bytes is over the {kind} upload limit of {limits.file_bytes(kind)}")
    pixels, seconds = _declared_size(name, data)
    if pixels is not None and pixels > limits.max_pixels:
        raise LimitExceeded(
            name, f"{pixels} pixels is over the limit of {limits.max_pixels} (a decompression bomb, or an image "
            "too large: scale it down)"
        )
    if seconds is not None and seconds > limits.max_seconds:
        raise LimitExceeded(name, f"{seconds:.1f} s is over the limit of {limits.max_seconds:g} s: send a shorter clip")


def _declared_size(name: str, data: bytes) -> tuple[int | None, float | None]:
    """(pixels, seconds) as the file's header declares them, None where it declares none or is no image, sound or
    video container (the decoder then judges the file)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:  # reads the header only
                return image.size[0] * image.size[1], None
        except Image.DecompressionBombError as error:
            raise LimitExceeded(name, f"decompression bomb refused ({error})") from None
        except Exception:  # not an image PIL knows: try a sound or video container
            pass
    return _container_size(data)


def _container_size(data: bytes) -> tuple[int | None, float | None]:
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if container.format.name == "tty":  # FFmpeg reads any text as an ANSI-art video
                return None, None
            pixels = None
            if container.streams.video:
                context = container.streams.video[0].codec_context
                pixels = (context.width or 0) * (context.height or 0) or None
            seconds = container.duration / av.time_base if container.duration else _stream_seconds(container)
            return pixels, seconds
    except Exception:  # not a container FFmpeg knows (a CSV, a truncated header): the decoder says why
        return None, None


def _stream_seconds(container) -> float | None:
    durations = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
    return max(durations) if durations else None


def check_k(k: object, limits: Limits) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= limits.max_k:
        raise OpenBindInputError(k, f"k must be an integer from 1 to {limits.max_k}")
    return k


def check_weight(weight: object, term: int) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise OpenBindInputError(weight, f"the weight of query term {term} must be a finite number")
    return float(weight)
