"""Serving an index over HTTP: an API for applications and a page for people.

`create_app(index, model, settings)` is the FastAPI app (POST /v1/embed, POST /v1/search, GET /v1/items/{id}
and its /media, /healthz, /readyz, /metrics, the page at /); `serve(...)` runs it under uvicorn, refusing a
non-loopback host without a token. Requests of every client are embedded together (`batching`), within the
limits of `limits`. Depends on search and the model, never the reverse. Needs the `serve` extra.
"""

from openbind.serve.app import ServeSettings, create_app
from openbind.serve.batching import Batcher, BatchSettings
from openbind.serve.limits import Limits
from openbind.serve.server import serve

__all__ = ["BatchSettings", "Batcher", "Limits", "ServeSettings", "create_app", "serve"]
