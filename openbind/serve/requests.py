"""Request bodies of the embed and search endpoints, read and checked: JSON, or multipart with files.

Multipart: every file part is an input whose kind is the part's field name (`image`, `audio`, `depth`, ...) or,
for a part named `file`, the kind its filename's suffix names; text fields named after a kind that holds no
files (`text`) are inputs too. For search, a field `json` carries the JSON body, whose terms can name the
uploads by position (`{"file": 0, "weight": -0.5}`); uploads no term names are added with weight 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from openbind.errors import OpenBindInputError
from openbind.modalities import TEXT_TOWER, get_input, input_for_path
from openbind.serve.http import ApiError
from openbind.serve.limits import Limits, check_k, check_weight
from openbind.serve.service import ITEM, SearchService, Term

FILE_FIELD = "file"  # a multipart part whose kind comes from its filename's suffix
JSON_FIELD = "json"  # a multipart field holding the JSON body


@dataclass
class Upload:
    name: str  # the filename (or the field name), for error messages
    kind: str
    data: bytes


async def read_body(request: Request, limits: Limits) -> tuple[dict[str, Any], list[tuple[str, str]], list[Upload]]:
    """(JSON body, text fields as (field, value), uploads) of a JSON or multipart request."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        return _json_object(await request.body()), [], []
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(415, "send application/json, or multipart/form-data with files")
    try:
        form = await request.form(max_files=limits.max_files, max_fields=limits.max_texts + limits.max_terms + 1)
    except Exception as error:  # python-multipart's and Starlette's parse errors
        raise ApiError(400, f"unreadable multipart body: {error}") from None
    body: dict[str, Any] = {}
    fields: list[tuple[str, str]] = []
    uploads: list[Upload] = []
    largest = max([limits.max_file_bytes, *limits.max_file_bytes_by_kind.values()])
    try:
        for field, value in form.multi_items():
            if isinstance(value, UploadFile):
                name = value.filename or field
                if value.size is not None and value.size > largest:
                    raise ApiError(413, f"{value.size} bytes is over the upload limit of {largest}", name)
                uploads.append(Upload(name, _upload_kind(field, name), await value.read()))
            elif field == JSON_FIELD:
                body = _json_object(value.encode())
            else:
                fields.append((field, value))
    finally:
        await form.close()
    return body, fields, uploads


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data or b"{}")
    except ValueError as error:
        raise ApiError(400, f"the body is not valid JSON ({error})") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _upload_kind(field: str, filename: str) -> str:
    if field != FILE_FIELD:
        return field
    found = input_for_path(filename)
    if found is None:
        raise OpenBindInputError(filename, "no input kind has this file's suffix: name the part after its kind "
                                 "(image, audio, depth, ...) instead of 'file'")  # fmt: skip
    return found.name


def embed_inputs(
    service: SearchService, body: dict[str, Any], fields: list[tuple[str, str]], uploads: list[Upload]
) -> dict[str, tuple[list[Any], list[str]]]:
    """kind -> (values, names) of an embed request, every kind checked to have a tower."""
    limits = service.limits
    inputs: dict[str, tuple[list[Any], list[str]]] = {}
    texts = list(fields)
    for key, values in body.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise OpenBindInputError(key, "give a list of strings per input kind; send files as multipart/form-data")
        texts += [(key, value) for value in values]
    if len(texts) > limits.max_texts:
        raise OpenBindInputError("body", f"{len(texts)} texts is over the limit of {limits.max_texts} per request")
    for key, value in texts:
        kind = service.kind_for(key, key)
        if get_input(kind).holds_files:
            raise OpenBindInputError(key, f"{kind} inputs are files: send them as multipart/form-data file parts")
        _check_text(value, key, limits)
        values, names = inputs.setdefault(kind, ([], []))
        values.append(value)
        names.append(f"{key}[{len(values) - 1}]")
    for upload in uploads:
        kind = service.kind_for(upload.kind, upload.name)
        if not get_input(kind).holds_files:
            raise OpenBindInputError(upload.name, f"{kind} inputs are not files: send them as text fields or JSON")
        values, names = inputs.setdefault(kind, ([], []))
        values.append(upload.data)
        names.append(upload.name)
    if not inputs:
        raise OpenBindInputError("body", 'nothing to embed: give e.g. {"text": ["a dog"]}, or files')
    return inputs


def search_request(
    service: SearchService, body: dict[str, Any], uploads: list[Upload]
) -> tuple[list[Term], int, list[str] | None]:
    """(terms, k, modalities) of a search request."""
    limits = service.limits
    unknown = set(body) - {"query", "k", "modalities"}
    if unknown:
        raise OpenBindInputError(sorted(unknown)[0], "unknown field; a search takes query, k and modalities")
    raw = body.get("query", [])
    if isinstance(raw, str):
        raw = [{get_input(TEXT_TOWER).name: raw}]
    if not isinstance(raw, list):
        raise OpenBindInputError("query", "give a list of terms, e.g. [{\"text\": \"a kettle\", \"weight\": 1.0}]")
    used: set[int] = set()
    terms = [_term(service, term, i, uploads, used) for i, term in enumerate(raw)]
    terms += [Term(service.kind_for(u.kind, u.name), u.data, 1.0, u.name) for i, u in enumerate(uploads) if i not in used]
    if not terms:
        raise OpenBindInputError("query", "the query has no terms: give a text, an item or a file")
    if len(terms) > limits.max_terms:
        raise OpenBindInputError("query", f"{len(terms)} terms is over the limit of {limits.max_terms}")
    modalities = body.get("modalities")
    if modalities is not None and not isinstance(modalities, list):
        raise OpenBindInputError("modalities", "give a list of input kinds or modalities")
    return terms, check_k(body.get("k", 10), limits), service.check_modalities(modalities) if modalities else None


def _term(service: SearchService, term: Any, position: int, uploads: list[Upload], used: set[int]) -> Term:
    name = f"query[{position}]"
    if not isinstance(term, dict):
        raise OpenBindInputError(name, 'a term is an object such as {"text": "a kettle", "weight": 1.0}')
    weight = check_weight(term.get("weight", 1.0), position)
    keys = set(term) - {"weight", "kind"}
    if len(keys) != 1:
        raise OpenBindInputError(name, "a term has one of: a kind with its text, \"item\" (an id) or \"file\" "
                                 "(the position of an upload)")  # fmt: skip
    key = keys.pop()
    value = term[key]
    if key == ITEM:
        if isinstance(value, bool) or not isinstance(value, int):
            raise OpenBindInputError(name, f"an item term takes an item id (a number), got {value!r}")
        return Term(ITEM, value, weight, name)
    if key == FILE_FIELD:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(uploads):
            raise OpenBindInputError(name, f"a file term names an upload by its position (0 to {len(uploads) - 1})")
        upload = uploads[value]
        used.add(value)
        kind = service.kind_for(term.get("kind", upload.kind), upload.name)
        return Term(kind, upload.data, weight, upload.name)
    kind = service.kind_for(key, name)
    if get_input(kind).holds_files:
        raise OpenBindInputError(name, f"{kind} inputs are files: upload them (multipart) and name them as "
                                 "{\"file\": position}; the server fetches no paths or URLs")  # fmt: skip
    _check_text(value, name, service.limits)
    return Term(kind, value, weight, name)


def _check_text(value: Any, name: str, limits: Limits) -> None:
    if not isinstance(value, str) or not value.strip():
        raise OpenBindInputError(name, "give a non-empty string")
    if len(value) > limits.max_text_chars:
        raise OpenBindInputError(name, f"{len(value)} characters is over the limit of {limits.max_text_chars}")
