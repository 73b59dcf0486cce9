"""OpenAI CLIP's byte-level BPE tokenizer, giving exactly the ids ImageBind's text encoder was trained on.

The reference (CLIP's `SimpleTokenizer`, as ImageBind ships it) cleans the text (ftfy, HTML unescaping twice,
whitespace collapse, lower-case), splits it into pieces with one regular expression, maps each piece's UTF-8
bytes to printable characters and merges them by BPE rank. This module computes the same ids, many times faster,
because:

- ftfy is skipped when it cannot change the result: printable ASCII plus tab/newline/carriage return,
  without "&" (ftfy only rewrites non-ASCII text, HTML entities, terminal escapes and control characters; a
  property test checks the equivalence against ftfy);
- no regex piece ever spans a space, so the cleaned text is split on spaces and each word's ids come from a
  bounded cache (a miss runs the regex and BPE on that word only);
- a piece that is itself a whole-word token is that token, without running BPE: true of every whole-word
  token of the shipped vocabulary (a test checks all 34,483), so this is only used with that file;
- rows are written into one preallocated numpy array that becomes the output tensor without a copy.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import importlib.resources
import operator
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from itertools import chain, repeat
from pathlib import Path

import ftfy
import numpy as np
import regex
import torch

from openbind.errors import OpenBindInputError

SOT_TEXT = "<|startoftext|>"
EOT_TEXT = "<|endoftext|>"
END_OF_WORD = "</w>"
# The reference keeps lines[1 : 49152 - 256 - 2 + 1] of the vocab file: 48,894 merges, 49,408 tokens in all.
MAX_MERGES = 49152 - 256 - 2
SHIPPED_VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"

_PIECE_RE = regex.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
    regex.IGNORECASE,
)
# ASCII characters outside the set ftfy and html.unescape provably leave alone ("&" is tested separately).
_ASCII_NEEDS_FTFY = re.compile(r"[^\t\n\r -~]")


def default_vocab_path() -> Path:
    """The vocabulary file shipped inside the package (OpenAI CLIP's `bpe_simple_vocab_16e6.txt.gz`)."""
    return Path(str(importlib.resources.files("openbind.modalities.text") / "bpe_simple_vocab_16e6.txt.gz"))


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> character table, in the reference's order (its values are the first 256
    tokens). Printable Latin-1 bytes stand for themselves; the other 68 bytes (space and control characters
    among them) get U+0100 onwards, so BPE symbols never contain whitespace."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in kept}
    for i, b in enumerate(b for b in range(256) if b not in table):
        table[b] = chr(256 + i)
    return table


def needs_ftfy(text: str) -> bool:
    """False when ftfy.fix_text and html.unescape cannot change `text`, so cleaning is only whitespace and case."""
    if not text.isascii() or "&" in text:
        return True
    return not text.isprintable() and _ASCII_NEEDS_FTFY.search(text) is not None


def clean_words(text: str) -> list[str]:
    """The reference's cleaned text, split on its single spaces (it may hold one empty word)."""
    if needs_ftfy(text):
        text = html.unescape(html.unescape(ftfy.fix_text(text)))
        return " ".join(text.split()).lower().split(" ")
    return text.lower().split()


def _read_merges(path: Path) -> tuple[list[tuple[str, str]], str]:
    """The merges the reference keeps, and the file's sha256."""
    try:
        data = path.read_bytes()
        lines = gzip.decompress(data).decode("utf-8").split("\n")
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise OpenBindInputError(str(path), f"cannot read the BPE vocabulary file ({e})") from e
    merges = []
    for line in lines[1 : MAX_MERGES + 1]:
        pair = tuple(line.split())
        if len(pair) != 2:
            raise OpenBindInputError(str(path), f"BPE merge line {line!r} is not two symbols")
        merges.append(pair)
    return merges, hashlib.sha256(data).hexdigest()


class _WordCache(dict):
    """word -> token ids. Misses are computed in `__missing__`, so `map(cache.__getitem__, words)` stays in C
    for hits. Cleared when full: bounded memory at the cost of re-warming, and safe under threads."""

    def __init__(self, compute: Callable[[str], tuple[int, ...]], max_size: int):
        super().__init__()
        self._compute = compute
        self._max_size = max_size

    def __missing__(self, word: str) -> tuple[int, ...]:
        ids = self._compute(word)
        if len(self) >= self._max_size:
            self.clear()
        self[word] = ids
        return ids


class Tokenizer:
    """Text -> CLIP BPE ids. `tokenizer(texts)` gives the (N, context_length) rows the text encoder takes:
    start-of-text, the ids truncated to fit, end-of-text (always last), zero padding."""

    def __init__(self, vocab_path: str | Path | None = None, context_length: int = 77, cache_size: int = 100_000):
        self.context_length = _check_context_length(context_length)
        path = Path(vocab_path) if vocab_path is not None else default_vocab_path()
        self._merges, digest = _read_merges(path)
        table = byte_to_unicode()
        self._byte_chars = [table[b] for b in range(256)]
        self._char_bytes = {c: b for b, c in table.items()}
        symbols = list(table.values())
        vocab = [*symbols, *(s + END_OF_WORD for s in symbols), *("".join(m) for m in self._merges)]
        vocab += [SOT_TEXT, EOT_TEXT]
        self._encoder = {token: i for i, token in enumerate(vocab)}
        if len(self._encoder) != len(vocab):
            raise OpenBindInputError(str(path), "the BPE vocabulary has duplicate tokens")
        self._decoder = vocab
        self._ranks = {pair: i for i, pair in enumerate(self._merges)}
        self.vocab_size = len(vocab)
        self.sot_token_id = self._encoder[SOT_TEXT]
        self.eot_token_id = self._encoder[EOT_TEXT]
        self._special = {SOT_TEXT: (self.sot_token_id,), EOT_TEXT: (self.eot_token_id,)}
        # byte string of a whole-word token -> its id; a BPE shortcut proven (by test) for the shipped file only.
        self._whole_words = {}
        if digest == SHIPPED_VOCAB_SHA256:
            self._whole_words = {t[: -len(END_OF_WORD)]: i for t, i in self._encoder.items() if t.endswith(END_OF_WORD)}
        self._cache = _WordCache(self._encode_word, cache_size)

    def encode(self, text: str) -> list[int]:
        """BPE ids of `text`, without start/end-of-text and without truncation."""
        if not isinstance(text, str):
            raise OpenBindInputError(text, f"expected a str, got {type(text).__name__}")
        return list(chain.from_iterable(map(self._cache.__getitem__, clean_words(text))))

    def decode(self, ids: Iterable[int] | torch.Tensor | np.ndarray) -> str:
        """Text of `ids` as the reference decodes it: words end with a space and special tokens are kept, so
        cut padded rows at end-of-text first (pad id 0 is the token "!")."""
        if isinstance(ids, (torch.Tensor, np.ndarray)):
            if ids.ndim != 1:
                raise OpenBindInputError(ids, "decode takes one 1-D sequence of ids")
            ids = ids.tolist()
        pieces = []
        for i in ids:
            try:
                index = operator.index(i)
            except TypeError:
                index = -1
            if not 0 <= index < self.vocab_size:
                raise OpenBindInputError(i, f"not a token id in [0, {self.vocab_size})")
            pieces.append(self._decoder[index])
        data = bytes(self._char_bytes[c] for c in "".join(pieces))
        return data.decode("utf-8", errors="replace").replace(END_OF_WORD, " ")

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor:
        """int64 (N, context_length) rows; a single string gives N = 1."""
        length = self.context_length if context_length is None else _check_context_length(context_length)
        items = _as_texts(texts)
        out = np.zeros((len(items), length), dtype=np.int64)
        lookup, sot, eot, keep = self._cache.__getitem__, self.sot_token_id, self.eot_token_id, length - 1
        for row, text in zip(out, items):
            ids = [sot]
            ids.extend(chain.from_iterable(map(lookup, clean_words(text))))
            del ids[keep:]
            ids.append(eot)
            row[: len(ids)] = ids
        return torch.from_numpy(out)

    def _encode_word(self, word: str) -> tuple[int, ...]:
        """Ids of a space-free word. Its pieces go through the cache too (a piece, matched again, is one piece:
        itself), so "dog." reuses the ids of "dog"."""
        pieces = _PIECE_RE.findall(word)
        if len(pieces) == 1 and pieces[0] == word:
            return self._encode_piece(word)
        return tuple(chain.from_iterable(map(self._cache.__getitem__, pieces)))

    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        """Ids of one regex piece: a special token, a whole-word token, or BPE of its UTF-8 bytes."""
        special = self._special.get(piece)
        if special is not None:
            return special
        chars = piece  # printable ASCII bytes map to themselves
        if not (piece.isascii() and piece.isprintable()):
            chars = "".join(self._byte_chars[b] for b in piece.encode("utf-8"))
        whole = self._whole_words.get(chars)
        if whole is not None:
            return (whole,)
        return self._merge(chars)

    def _merge(self, chars: str) -> tuple[int, ...]:
        """BPE of a piece's byte characters: merge the lowest-ranked adjacent pair everywhere (left to right,
        without overlap) until no adjacent pair is a merge; the last symbol carries the end-of-word marker."""
        symbols = list(chars)
        symbols[-1] += END_OF_WORD
        get, no_rank = self._ranks.get, len(self._merges)
        while len(symbols) > 1:
            best = min(map(get, zip(symbols, symbols[1:]), repeat(no_rank)))
            if best == no_rank:
                break
            first, second = self._merges[best]
            i = symbols.index(first)
            while True:
                if i + 1 < len(symbols) and symbols[i + 1] == second:
                    symbols[i : i + 2] = [first + second]
                try:
                    i = symbols.index(first, i + 1)
                except ValueError:
                    break
        return tuple(map(self._encoder.__getitem__, symbols))


def _check_context_length(context_length: object) -> int:
    if isinstance(context_length, bool) or not isinstance(context_length, int) or context_length < 2:
        raise OpenBindInputError(context_length, "context_length must be an int >= 2 (start + end of text)")
    return context_length


def _as_texts(texts: object) -> Sequence[str]:
    if isinstance(texts, str):
        return [texts]
    if texts is None or isinstance(texts, (bytes, bytearray)) or not isinstance(texts, (Sequence, np.ndarray)):
        raise OpenBindInputError(texts, "expected a str or a sequence of str")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise OpenBindInputError(text, f"text #{i} is a {type(text).__name__}, not a str")
    return texts


_default: Tokenizer | None = None
_default_lock = threading.Lock()


def default_tokenizer() -> Tokenizer:
    """The process-wide tokenizer over the shipped vocabulary, built on first use (once, even under threads)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Tokenizer()
    return _default


def tokenize(texts: str | Sequence[str], context_length: int = 77) -> torch.Tensor:
    """int64 (N, context_length) token rows of `texts` with the shipped CLIP vocabulary."""
    return default_tokenizer()(texts, context_length)
