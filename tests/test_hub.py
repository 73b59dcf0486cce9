"""Checkpoint download and cache, against a real HTTP server on 127.0.0.1 that can misbehave on purpose."""

from __future__ import annotations

import hashlib
import random
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from openbind.errors import CheckpointError, OpenBindInputError
from openbind.weights import hub

PAYLOAD_SIZE = 300_000


class _Server(ThreadingHTTPServer):
    """Serves the files of ``root``; its attributes choose how to misbehave, ``requests`` records what came in."""

    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.requests: list[dict[str, str | None]] = []
        self.cut_after: int | None = None  # body bytes sent before the next response is cut (one-shot)
        self.cut_mode = "close"  # "close": drop the connection; "stall": stop sending until teardown
        self.ignore_range = False
        self.wrong_content = False
        self.delay = 0.0  # seconds before each body is sent
        self.release = threading.Event()

    def url(self, name: str = "ckpt.bin") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append({"path": self.path, "range": self.headers.get("Range")})
        path = srv.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        if srv.wrong_content:
            body = bytes(b ^ 0xFF for b in body[:16]) + body[16:]
        start = 0
        requested = self.headers.get("Range")
        if requested and not srv.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", requested)[1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        time.sleep(srv.delay)
        data = body[start:]
        if srv.cut_after is not None:
            data, srv.cut_after = data[: srv.cut_after], None
            self.wfile.write(data)
            self.wfile.flush()
            if srv.cut_mode == "stall":
                srv.release.wait(5)
            self.close_connection = True
            return
        self.wfile.write(data)


@pytest.fixture
def payload(tmp_path: Path) -> bytes:
    data = random.Random(0).randbytes(PAYLOAD_SIZE)
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "ckpt.bin").write_bytes(data)
    return data


@pytest.fixture
def server(tmp_path: Path, payload: bytes):
    srv = _Server(tmp_path / "srv")
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)
    assert not thread.is_alive()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_writes_verified_file(tmp_path, server, payload):
    dest = tmp_path / "out" / "model.bin"
    got = hub.download(server.url(), dest, sha256=_sha(payload).upper(), progress=False)
    assert got == dest
    assert dest.read_bytes() == payload
    assert not dest.with_name("model.bin.part").exists()
    assert server.requests == [{"path": "/ckpt.bin", "range": None}]


def test_download_defaults_to_cache_dir_and_url_file_name(tmp_path, server, payload, monkeypatch):
    monkeypatch.setenv("OPENBIND_CACHE", str(tmp_path / "cache"))
    got = hub.download(server.url(), progress=False)
    assert got == tmp_path / "cache" / "ckpt.bin"
    assert got.read_bytes() == payload


def test_interrupted_download_resumes_with_range(tmp_path, server, payload):
    dest = tmp_path / "model.bin"
    part = tmp_path / "model.bin.part"
    server.cut_after = 100_000
    with pytest.raises(CheckpointError, match="re-running resumes it") as info:
        hub.download(server.url(), dest, sha256=_sha(payload), progress=False)
    assert "local path" in str(info.value)
    assert part.stat().st_size == 100_000
    assert not dest.exists()

    assert hub.download(server.url(), dest, sha256=_sha(payload), progress=False) == dest
    assert server.requests[-1]["range"] == "bytes=100000-"
    assert dest.read_bytes() == payload
    assert not part.exists()


def test_stalled_server_times_out_and_keeps_partial(tmp_path, server, payload):
    dest = tmp_path / "model.bin"
    server.cut_after, server.cut_mode = 50_000, "stall"
    with pytest.raises(CheckpointError, match="re-running resumes it"):
        hub.download(server.url(), dest, progress=False, timeout=0.3)
    assert (tmp_path / "model.bin.part").stat().st_size == 50_000
    assert not dest.exists()


def test_server_ignoring_range_restarts_from_zero(tmp_path, server, payload):
    dest = tmp_path / "model.bin"
    (tmp_path / "model.bin.part").write_bytes(b"\0" * 1000)  # a prefix that does not match the file
    server.ignore_range = True
    hub.download(server.url(), dest, sha256=_sha(payload), progress=False)
    assert server.requests == [{"path": "/ckpt.bin", "range": "bytes=1000-"}]
    assert dest.read_bytes() == payload


def test_complete_part_answered_416_is_finished_without_body(tmp_path, server, payload):
    dest = tmp_path / "model.bin"
    (tmp_path / "model.bin.part").write_bytes(payload)
    hub.download(server.url(), dest, sha256=_sha(payload), progress=False)
    assert server.requests == [{"path": "/ckpt.bin", "range": f"bytes={PAYLOAD_SIZE}-"}]
    assert dest.read_bytes() == payload


def test_part_longer_than_file_restarts(tmp_path, server, payload):
    dest = tmp_path / "model.bin"
    (tmp_path / "model.bin.part").write_bytes(b"x" * (PAYLOAD_SIZE + 10))
    hub.download(server.url(), dest, progress=False)
    assert [r["range"] for r in server.requests] == [f"bytes={PAYLOAD_SIZE + 10}-", None]
    assert dest.read_bytes() == payload


def test_sha256_mismatch_deletes_download(tmp_path, server, payload):
    dest = tmp_path / "model.bin"
    server.wrong_content = True
    with pytest.raises(CheckpointError, match="sha256") as info:
        hub.download(server.url(), dest, sha256=_sha(payload), progress=False)
    assert "re-run" in str(info.value).lower()
    assert not dest.exists()
    assert not (tmp_path / "model.bin.part").exists()


def test_existing_dest_is_reused_without_request(tmp_path, server, payload):
    dest = tmp_path / "model.bin"
    dest.write_bytes(payload)
    assert hub.download(server.url(), dest, sha256=_sha(payload), progress=False) == dest
    assert hub.download(server.url(), dest, progress=False) == dest
    assert server.requests == []


def test_existing_dest_with_wrong_hash_is_downloaded_again(tmp_path, server, payload):
    dest = tmp_path / "model.bin"
    dest.write_bytes(b"stale")
    hub.download(server.url(), dest, sha256=_sha(payload), progress=False)
    assert len(server.requests) == 1
    assert dest.read_bytes() == payload


def test_concurrent_callers_download_once(tmp_path, server, payload):
    dest = tmp_path / "model.bin"
    server.delay = 0.3
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(hub.download(server.url(), dest, progress=False)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert results == [dest, dest]
    assert len(server.requests) == 1
    assert dest.read_bytes() == payload


def test_http_error_and_refused_connection_raise_checkpoint_error(tmp_path, server):
    with pytest.raises(CheckpointError, match="HTTP 404"):
        hub.download(server.url("missing.bin"), tmp_path / "m.bin", progress=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CheckpointError, match="local path"):
        hub.download(f"http://127.0.0.1:{port}/ckpt.bin", tmp_path / "m.bin", progress=False, timeout=2)
    assert not (tmp_path / "m.bin").exists()


def test_progress_bar_starts_at_resumed_bytes(tmp_path, server, payload, capsys):
    (tmp_path / "model.bin.part").write_bytes(payload[:PAYLOAD_SIZE // 2])
    hub.download(server.url(), tmp_path / "model.bin", progress=True)
    err = capsys.readouterr().err
    assert "model.bin" in err and "100%" in err
    assert " 50%" in err  # tqdm's first refresh shows the resumed half before any new byte


def test_local_path_and_file_url_are_returned_without_copy(tmp_path, payload):
    source = tmp_path / "srv" / "ckpt.bin"
    assert hub.download(str(source), tmp_path / "unused.bin") == source
    assert hub.download(source.as_uri(), sha256=_sha(payload)) == source
    assert not (tmp_path / "unused.bin").exists()
    with pytest.raises(CheckpointError, match="sha256"):
        hub.download(source.as_uri(), sha256=_sha(b"other"))
    assert source.read_bytes() == payload
    with pytest.raises(CheckpointError, match="no such file"):
        hub.download(str(tmp_path / "absent.bin"))


def test_malformed_sha256_is_input_error(tmp_path, payload):
    with pytest.raises(OpenBindInputError, match="64 hexadecimal"):
        hub.download(str(tmp_path / "srv" / "ckpt.bin"), sha256="abc")


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENBIND_CACHE", str(tmp_path / "override"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.cache_dir() == tmp_path / "override"
    assert (tmp_path / "override").is_dir()
    monkeypatch.delenv("OPENBIND_CACHE")
    assert hub.cache_dir() == tmp_path / "xdg" / "openbind"
    assert (tmp_path / "xdg" / "openbind").is_dir()
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert hub.cache_dir() == tmp_path / "home" / ".cache" / "openbind"


def test_resolve_checkpoint_local_url_and_known_name(tmp_path, server, payload, monkeypatch):
    monkeypatch.setenv("OPENBIND_CACHE", str(tmp_path / "cache"))
    local = tmp_path / "srv" / "ckpt.bin"
    assert hub.resolve_checkpoint(local) == local
    assert hub.resolve_checkpoint(str(local), sha256=_sha(payload)) == local
    assert server.requests == []

    monkeypatch.setattr(hub, "KNOWN_CHECKPOINTS", {"tiny": server.url()})
    got = hub.resolve_checkpoint("tiny", sha256=_sha(payload), progress=False)
    assert got == tmp_path / "cache" / "ckpt.bin"
    assert got.read_bytes() == payload
    got.unlink()
    assert hub.resolve_checkpoint(server.url(), progress=False) == got
    got.unlink()
    assert hub.resolve_checkpoint("alias", known={"alias": server.url()}, progress=False) == got
    assert len(server.requests) == 3


def test_resolve_checkpoint_unknown_name_lists_known_names(monkeypatch):
    monkeypatch.setattr(hub, "KNOWN_CHECKPOINTS", {"imagebind_huge": "https://x/y.pth", "other": "https://x/z"})
    with pytest.raises(CheckpointError, match="no_such_model") as info:
        hub.resolve_checkpoint("no_such_model")
    assert "imagebind_huge, other" in str(info.value)
