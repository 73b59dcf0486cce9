"""Search across modalities: index folders and manifests of files with a model, query them with composed terms.

`build_index(src, model, out)` (resumable), `Index.open(path).search(terms, k)`, `.update()`, `.add()`,
`.remove()`; `choose_index` picks the FAISS index type; `MilvusIndex` keeps the vectors in Milvus instead
(`build_index(..., backend="milvus", uri=...)`). Depends on the model, never the reverse.
"""

from openbind.search.ann import choose_index
from openbind.search.index import Index, SearchResult, SyncReport, build_index
from openbind.search.milvus import MilvusIndex
from openbind.search.query import parse_term

__all__ = ["Index", "MilvusIndex", "SearchResult", "SyncReport", "build_index", "choose_index", "parse_term"]
