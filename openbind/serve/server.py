"""Running the app under uvicorn, on a loopback address unless a token guards it."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from openbind.serve.app import ServeSettings, create_app
from openbind.serve.http import check_binding

TOKEN_VARIABLE = "OPENBIND_TOKEN"


def serve(
    index: str | os.PathLike, model: Any = None, *, host: str = "127.0.0.1", port: int = 8000,
    settings: ServeSettings = ServeSettings(), log_level: str = "info",
) -> None:  # fmt: skip
    """Serve `index` until interrupted. A host other than a loopback address needs `settings.token`."""
    import uvicorn

    check_binding(host, settings.token)
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be from 0 to 65535, got {port}")
    app = create_app(index, model, settings)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=5,
                h11_max_incomplete_event_size=64 * 1024)  # fmt: skip


@contextlib.contextmanager
def running(app, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` on a thread while the block runs (port 0: a free port); yields the base URL. For tests,
    benchmarks and notebooks; the server stops when the block ends."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server stopped while starting (see its log)")
            time.sleep(0.01)
        yield f"http://{host if ':' not in host else f'[{host}]'}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
