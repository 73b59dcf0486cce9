"""Search across modalities: index folders and manifests of files with a model, query them with composed terms.

`build_index(src, model, out)` (resumable), `Index.open(path).search(terms, k)`, `.update()`, `.add()`,
`.remove()`; `choose_index` picks the FAISS index type; the vectors are searched in FAISS (`faiss_store`) or in
Milvus (`build_index(..., backend="milvus", uri=...)`, `milvus`). Depends on the model, never the reverse.
"""

from openbind.search.ann import choose_index
from openbind.search.index import Index, SyncReport, build_index
from openbind.search.query import parse_term
from openbind.search.store import SearchResult

__all__ = ["Index", "SearchResult", "SyncReport", "build_index", "choose_index", "parse_term"]
