"""openbind.serve: the real server (uvicorn on 127.0.0.1, a free port) with a tiny model and a mixed index."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("faiss")
pytest.importorskip("av")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")
pytest.importorskip("prometheus_client")
httpx = pytest.importorskip("httpx")

import openbind  # noqa: E402
from openbind import cli, preprocess  # noqa: E402
from openbind.search import Index  # noqa: E402
from openbind.serve import Batcher, BatchSettings, Limits, ServeSettings, create_app  # noqa: E402
from openbind.serve.http import check_binding, token_matches  # noqa: E402
from openbind.serve.server import running  # noqa: E402
from media import write_audio, write_depth, write_image  # noqa: E402
from serve_world import build_world  # noqa: E402

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("serve"))


def _settings(**limits) -> ServeSettings:
    defaults = dict(max_file_bytes=300_000, max_request_bytes=1_000_000, max_pixels=1_000_000, max_seconds=5.0)
    return ServeSettings(token=TOKEN, limits=Limits(**{**defaults, **limits}),
                         batching=BatchSettings(max_batch=16, max_wait_ms=200))  # fmt: skip


@pytest.fixture(scope="module")
def server(world):
    with running(create_app(world / "index", settings=_settings())) as url:
        with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
            yield client


@pytest.fixture(scope="module")
def index(world):
    with Index.open(world / "index") as opened:
        yield opened


def _items(index) -> dict[str, int]:
    return {Path(row["path"]).name: row["id"] for row in index.items()}


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height 8-bit gray pixels, with one compressed row of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}}" if labels else f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# ---- auth and health


def test_health_needs_no_token_and_everything_else_does(server):
    bare = httpx.Client(base_url=server.base_url)
    assert bare.get("/healthz").json() == {"status": "ok"}
    assert bare.get("/readyz").json() == {"ready": True}
    assert bare.get("/").status_code == 200 and "openbind" in bare.get("/").text  # the page's own files
    for method, path in [("get", "/v1/info"), ("get", "/metrics"), ("get", "/v1/items/1"), ("get", "/v1/items/1/media"),
                         ("post", "/v1/search"), ("post", "/v1/embed")]:  # fmt: skip
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            answer = getattr(bare, method)(path, headers=headers)
            assert answer.status_code == 401, (path, headers)
            assert answer.headers["www-authenticate"] == "Bearer" and "token" in answer.json()["error"]["reason"]
    assert server.get("/v1/info").status_code == 200


class _References(HTMLParser):
    """The src and href attributes of a page."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.found += [value for name, value in attrs if name in ("src", "href") and value]


def _docs_assets(client) -> list[str]:
    """Every file /docs and /redoc reference (scripts, styles, icon, the OpenAPI document), checked to name no
    other host; each fetched without the token."""
    assets = []
    for page in ("/docs", "/redoc"):
        answer = client.get(page, headers={"Authorization": ""})
        assert answer.status_code == 200, page
        assert "//" not in answer.text, page  # no absolute or scheme-relative URL: nothing from another host
        parser = _References()
        parser.feed(answer.text)
        assets += parser.found + re.findall(r"""(?:url|spec-url)\s*[:=]\s*['"]([^'"]+)['"]""", answer.text)
    assert {"/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css", "/docs-assets/redoc.standalone.js",
            "/openapi.json"} <= set(assets), assets  # fmt: skip
    return assets


def test_api_docs_load_offline_without_the_token(server, world):
    for asset in _docs_assets(server):
        assert server.get(asset, headers={"Authorization": ""}).status_code == 200, asset
        assert server.get(asset).status_code == 200, asset  # with the token too
    with running(create_app(world / "index")) as url, httpx.Client(base_url=url, timeout=60) as bare:  # no token set
        assert all(bare.get(asset).status_code == 200 for asset in _docs_assets(bare))


def test_binding_and_token_rules():
    check_binding("127.0.0.1", None)
    check_binding("::1", None)
    check_binding("localhost", None)
    with pytest.raises(ValueError, match="--token"):
        check_binding("0.0.0.0", None)
    check_binding("0.0.0.0", "t")
    assert token_matches("Bearer abc", "abc") and token_matches("bearer abc", "abc")
    assert not token_matches("Bearer abcd", "abc") and not token_matches("abc", "abc") and not token_matches(None, "abc")


def test_cli_refuses_a_public_host_without_a_token(world, capsys, monkeypatch):
    monkeypatch.delenv("OPENBIND_TOKEN", raising=False)
    assert cli.main(["serve", str(world / "index"), "--host", "0.0.0.0"]) == 2
    assert "--token" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    assert "--max-batch" in capsys.readouterr().out


# ---- embed


def test_embed_texts_and_files_match_the_model(server, world):
    model = openbind.create_model("imagebind_tiny", pretrained=world / "model", progress=False)
    texts = ["a dog barking", "a red kettle", "rain"]
    answer = server.post("/v1/embed", json={"text": texts}).json()
    got = torch.tensor(answer["embeddings"]["text"])
    assert answer["dim"] == 64 and got.shape == (3, 64)
    assert torch.allclose(got.norm(dim=1), torch.ones(3), atol=1e-5)
    with torch.inference_mode():
        expected = torch.cat([model.encode("text", preprocess.load("text", [t])) for t in texts])
    assert torch.allclose(got, expected, atol=1e-5)
    data = world / "data"
    files = [("image", ("red.jpg", (data / "red.jpg").read_bytes())), ("file", ("bark.wav", (data / "bark.wav").read_bytes())),
             ("depth", ("room_depth.png", (data / "room_depth.png").read_bytes()))]  # fmt: skip
    answer = server.post("/v1/embed", files=files, data={"text": "a dog"}).json()["embeddings"]
    assert set(answer) == {"image", "audio", "depth", "text"}
    with torch.inference_mode():
        for kind, name in [("image", "red.jpg"), ("audio", "bark.wav"), ("depth", "room_depth.png")]:
            options = model.config.input_options(kind)
            expected = model.encode(openbind.modalities.modality_of(kind).name,
                                    preprocess.load(kind, [str(data / name)], **options))  # fmt: skip
            assert torch.allclose(torch.tensor(answer[kind]), expected, atol=1e-5), kind


# ---- search


def test_search_json_matches_the_python_api_and_filters(server, index):
    answer = server.post("/v1/search", json={"query": [{"text": "a dog barking", "weight": 1.0}], "k": 5}).json()
    expected = index.search([("text", "a dog barking", 1.0)], k=5)
    assert [r["id"] for r in answer["results"]] == [r.id for r in expected]
    assert np.allclose([r["score"] for r in answer["results"]], [r.score for r in expected], atol=1e-4)
    assert answer["took_ms"] > 0 and set(answer["results"][0]) >= {"id", "path", "modality", "score", "media"}
    filtered = server.post("/v1/search", json={"query": "a dog", "k": 50, "modalities": ["audio"]}).json()["results"]
    assert {r["modality"] for r in filtered} == {"audio"}
    assert {Path(r["path"]).name for r in filtered} == {"bark.wav", "engine.flac", "clip.mp4"}  # the video's sound


def test_search_arithmetic_with_items_and_uploads(server, index, world):
    ids = _items(index)
    terms = [{"text": "a dog", "weight": 1.0}, {"item": ids["red.jpg"], "weight": -0.5}]
    answer = server.post("/v1/search", json={"query": terms, "k": 20}).json()["results"]
    expected = index.search([("text", "a dog", 1.0), ("item", ids["red.jpg"], -0.5)], k=20)
    assert [r["id"] for r in answer] == [r.id for r in expected] and ids["red.jpg"] not in [r["id"] for r in answer]
    green = write_image(world / "queries" / "green.png", color=(20, 200, 20))
    request = {"query": [{"file": 0, "weight": 1.0}, {"text": "a red photo", "weight": -0.25}], "k": 4}
    answer = server.post("/v1/search", data={"json": json.dumps(request)},
                         files=[("image", ("green.png", green.read_bytes()))]).json()["results"]  # fmt: skip
    expected = index.search([("image", str(green), 1.0), ("text", "a red photo", -0.25)], k=4)
    assert [r["id"] for r in answer] == [r.id for r in expected]
    assert np.allclose([r["score"] for r in answer], [r.score for r in expected], atol=1e-4)
    # an upload no term names is a term of weight 1; its kind may be given (a PNG read as depth)
    alone = server.post("/v1/search", files=[("file", ("green.png", green.read_bytes()))]).json()["results"]
    assert [r["id"] for r in alone] == [r.id for r in index.search([("image", str(green), 1.0)], k=10)]
    # an uploaded copy of an indexed file is left out of its own results, as the file is by path
    red = world / "data" / "red.jpg"
    copy = server.post("/v1/search", files=[("file", ("mine.jpg", red.read_bytes()))]).json()["results"]
    assert ids["red.jpg"] not in [r["id"] for r in copy]
    assert [r["id"] for r in copy] == [r.id for r in index.search([("image", str(red), 1.0)], k=10)]
    depth = write_depth(world / "queries" / "near.png", 1200)
    as_depth = {"query": [{"file": 0, "kind": "depth"}], "k": 3}
    answer = server.post("/v1/search", data={"json": json.dumps(as_depth)}, files=[("file", ("near.png", depth.read_bytes()))])
    assert [r["id"] for r in answer.json()["results"]] == [r.id for r in index.search([("depth", str(depth), 1.0)], k=3)]


# ---- items and their files


def test_items_and_media_by_id_only(server, index, world):
    ids = _items(index)
    item = server.get(f"/v1/items/{ids['clip.mp4']}").json()
    assert item["kind"] == "video" and item["kinds"] == ["video", "audio"] and item["media_type"] == "video/mp4"
    media = server.get(item["media"])
    assert media.status_code == 200 and media.headers["content-type"] == "video/mp4"
    assert media.content == (world / "data" / "clip.mp4").read_bytes()
    assert media.headers["x-content-type-options"] == "nosniff"
    assert server.get(f"/v1/items/{ids['red.jpg']}/media").headers["content-type"] == "image/jpeg"
    # outside the index's folder: a symlink out of it, a file added from elsewhere
    for name in ("link.png", "added.png"):
        answer = server.get(f"/v1/items/{ids[name]}/media")
        assert answer.status_code == 403 and "outside" in answer.json()["error"]["reason"]
        assert server.get(f"/v1/items/{ids[name]}").json()["media"] is None
    assert server.get("/v1/items/999999").status_code == 404
    assert server.get("/v1/items/999999/media").status_code == 404
    for bad in ["abc", "-1", "1.0", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "..", "1%00", "%C2%B9"]:
        for suffix in ("", "/media"):
            answer = server.get(f"/v1/items/{bad}{suffix}")
            assert 400 <= answer.status_code < 500, (bad, suffix, answer.status_code)
    assert server.get("/healthz").status_code == 200


# ---- limits and bad input


def test_bad_uploads_are_4xx_with_reasons_and_the_server_keeps_serving(server, world):
    data = world / "data"
    jpeg = (data / "red.jpg").read_bytes()

    def upload(kind: str, name: str, content: bytes) -> httpx.Response:
        return server.post("/v1/embed", files=[(kind, (name, content))])

    cases = [
        (upload("image", "big.jpg", b"\xff" * 400_000), 413, "upload limit"),
        (upload("image", "bomb.png", _png_header(30_000, 30_000)), 413, "pixels"),
        (upload("audio", "long.wav", write_audio(world / "long.wav", seconds=8).read_bytes()), 413, "8.0 s"),
        (upload("image", "notes.jpg", b"just some text, not an image" * 4), 400, "not a readable image"),
        (upload("image", "cut.jpg", jpeg[: len(jpeg) // 2]), 400, "Truncated"),
        (upload("audio", "empty.wav", b""), 400, "empty"),
        (upload("sonar", "x.bin", b"1234"), 400, "unknown input kind"),
        (upload("file", "x.xyz", b"1234"), 400, "suffix"),
        (server.post("/v1/embed", content=b"x" * 1_200_000, headers={"Content-Type": "application/json"}), 413, "limit"),
        (server.post("/v1/embed", content=b"{not json", headers={"Content-Type": "application/json"}), 400, "JSON"),
        (server.post("/v1/embed", content=b"text", headers={"Content-Type": "text/plain"}), 415, "multipart"),
        (server.post("/v1/embed", json={"image": ["/etc/passwd"]}), 400, "multipart"),
        (server.post("/v1/embed", json={"text": ["x" * 5000]}), 400, "characters"),
        (server.post("/v1/search", json={"query": [{"image": "/etc/passwd"}]}), 400, "fetches no paths"),
        (server.post("/v1/search", json={"query": "a dog", "k": 0}), 400, "k must be"),
        (server.post("/v1/search", json={"query": "a dog", "k": 10**6}), 400, "k must be"),
        (server.post("/v1/search", json={"query": "a dog", "modalities": ["smell"]}), 400, "not an input kind"),
        (server.post("/v1/search", json={"query": [{"item": 999999}]}), 400, "no item"),
        (server.post("/v1/search", json={"query": [{"text": "a", "weight": -1}, {"text": "a", "weight": 1}]}), 400, "cancel"),
        (server.post("/v1/search", json={"query": [{"text": "a", "weight": "heavy"}]}), 400, "finite number"),
        (server.post("/v1/search", json={"query": []}), 400, "no terms"),
    ]  # fmt: skip
    for answer, status, reason in cases:
        assert answer.status_code == status, (reason, answer.status_code, answer.text)
        assert reason in answer.json()["error"]["reason"], (reason, answer.json())
    assert cases[1][0].json()["error"]["input"] == "bomb.png"
    assert server.post("/v1/search", json={"query": "a dog", "k": 3}).status_code == 200
    metrics = server.get("/metrics").text
    assert _metric(metrics, "openbind_rejected_total", reason="too_large") >= 4
    assert _metric(metrics, "openbind_rejected_total", reason="bad_input") >= 10


def test_a_chunked_body_over_the_limit_is_refused_while_read(server):
    def chunks():
        for _ in range(30):
            yield b"x" * 50_000

    answer = server.post("/v1/embed", content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and "limit" in answer.json()["error"]["reason"]
    # a declared length far over the limit is answered before any of the body is sent
    host, port = server.base_url.host, server.base_url.port
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(f"POST /v1/embed HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                    "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n".encode())  # fmt: skip
        assert raw.recv(4096).startswith(b"HTTP/1.1 413")
    assert server.get("/healthz").status_code == 200


# ---- concurrency: 429, timeouts, micro-batching


def _concurrently(client: httpx.Client, requests: list[dict]) -> list[httpx.Response]:
    answers: list = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def send(i: int) -> None:
        barrier.wait()
        answers[i] = client.post("/v1/embed", json=requests[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_concurrent_requests_are_batched_and_match_unbatched(server, world):
    texts = [f"a photo of thing number {i}" for i in range(8)]
    before = server.get("/metrics").text
    answers = _concurrently(server, [{"text": [t]} for t in texts])
    assert [a.status_code for a in answers] == [200] * 8
    metrics = server.get("/metrics").text
    batches = _metric(metrics, "openbind_batch_size_count", tower="text") - _metric(before, "openbind_batch_size_count", tower="text")
    items = _metric(metrics, "openbind_batch_size_sum", tower="text") - _metric(before, "openbind_batch_size_sum", tower="text")
    assert items == 8 and batches < 8  # at least one forward pass held several requests' items
    model = openbind.create_model("imagebind_tiny", pretrained=world / "model", progress=False)
    with torch.inference_mode():
        for text, answer in zip(texts, answers):
            alone = model.encode("text", preprocess.load("text", [text]))[0]
            assert torch.allclose(torch.tensor(answer.json()["embeddings"]["text"][0]), alone, atol=1e-5)
    assert _metric(metrics, "openbind_requests_total", endpoint="/v1/embed", status="200") >= 8
    assert _metric(metrics, "openbind_request_seconds_count", endpoint="/v1/embed") >= 8
    assert "openbind_queue_depth" in metrics and "openbind_in_flight" in metrics


def test_over_the_concurrency_limit_answers_429_then_serves_again(world):
    settings = ServeSettings(limits=Limits(max_concurrent=2), batching=BatchSettings(max_batch=4, max_wait_ms=400))
    with running(create_app(world / "index", settings=settings)) as url, httpx.Client(base_url=url, timeout=60) as client:
        answers = _concurrently(client, [{"text": [f"text {i}"]} for i in range(8)])
        codes = sorted(a.status_code for a in answers)
        assert 200 in codes and 429 in codes and set(codes) == {200, 429}
        busy = next(a for a in answers if a.status_code == 429)
        assert busy.headers["retry-after"] == "1" and "busy" in busy.json()["error"]["reason"]
        assert client.post("/v1/embed", json={"text": ["again"]}).status_code == 200
        assert _metric(client.get("/metrics").text, "openbind_rejected_total", reason="busy") == codes.count(429)


def _threads_of_a_new_thread() -> int:
    """torch's threads per op in a thread started now (as the server's tower threads are)."""
    with ThreadPoolExecutor(1) as fresh:
        return fresh.submit(torch.get_num_threads).result()


def test_forward_passes_run_on_the_threads_set_and_the_setting_is_restored(world):
    with pytest.raises(ValueError, match="threads"):
        create_app(world / "index", settings=ServeSettings(threads=0))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with running(create_app(world / "index", settings=ServeSettings(threads=1))) as url:
            with httpx.Client(base_url=url, timeout=60) as client:
                assert client.post("/v1/search", json={"query": "a dog", "k": 2}).status_code == 200
            assert _threads_of_a_new_thread() == 1
        assert _threads_of_a_new_thread() == 2
    finally:
        torch.set_num_threads(before)


def test_a_request_over_the_time_limit_answers_504(world):
    settings = ServeSettings(limits=Limits(timeout_s=0.05), batching=BatchSettings(max_batch=4, max_wait_ms=500))
    with running(create_app(world / "index", settings=settings)) as url, httpx.Client(base_url=url, timeout=60) as client:
        answer = client.post("/v1/embed", json={"text": ["slow"]})
        assert answer.status_code == 504 and "longer than" in answer.json()["error"]["reason"]
        assert client.get("/healthz").status_code == 200


def test_batcher_groups_items_by_shape_and_routes_rows_back():
    calls = []

    class Doubler:  # any object with encode(modality, batch) works
        def encode(self, modality, batch):
            calls.append((modality, tuple(batch.shape)))
            return batch.flatten(1)[:, :2] * 2

    async def main():
        batcher = Batcher(Doubler().encode, BatchSettings(max_batch=8, max_wait_ms=50))
        try:
            small = [torch.full((1, 2), float(i)) for i in range(3)]  # requests of one item of shape (2,)
            large = [torch.full((2, 3), 10.0 + i) for i in range(2)]  # requests of two items of shape (3,)
            results = await asyncio.gather(*(batcher.embed("m", x) for x in small + large))
            return results
        finally:
            batcher.close()

    results = asyncio.run(main())
    assert sorted(calls) == [("m", (3, 2)), ("m", (4, 3))]  # one pass per shape, every request's items inside
    assert [r.tolist() for r in results] == [[[0.0, 0.0]], [[2.0, 2.0]], [[4.0, 4.0]], [[20.0, 20.0]] * 2, [[22.0, 22.0]] * 2]
    with pytest.raises(ValueError, match="max_batch"):
        BatchSettings(max_batch=0)
    with pytest.raises(ValueError, match="max_k"):
        Limits(max_k=0)
