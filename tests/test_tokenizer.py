"""The CLIP tokenizer: exact ids of the reference, its truncation rule, and the shortcuts that make it fast."""

from __future__ import annotations

import gzip
import hashlib
import html
import re
import threading

import ftfy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from openbind.modalities.text import tokenizer as tokenizer_module
from openbind.errors import OpenBindInputError
from openbind.modalities.text.tokenizer import (
    END_OF_WORD,
    SHIPPED_VOCAB_SHA256,
    Tokenizer,
    clean_words,
    default_tokenizer,
    default_vocab_path,
    needs_ftfy,
    tokenize,
)

SOT, EOT = 49406, 49407
A_ID = 320  # "a</w>"


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer()


def reference_clean(text: str) -> str:
    """The reference's cleaning, step by step as docs/imagebind.md section 3.2 states it."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return re.sub(r"\s+", " ", text).strip().lower()


def plain_encode(tok: Tokenizer, text: str) -> list[int]:
    """The reference pipeline without any shortcut: full cleaning, the regex over the whole text, BPE per piece."""
    ids: list[int] = []
    for piece in tokenizer_module._PIECE_RE.findall(reference_clean(text)):
        if piece in ("<|startoftext|>", "<|endoftext|>"):
            ids.append(SOT if piece == "<|startoftext|>" else EOT)
        else:
            ids.extend(tok._merge("".join(tok._byte_chars[b] for b in piece.encode("utf-8"))))
    return ids


def test_vocab_file_is_the_official_one():
    assert hashlib.sha256(default_vocab_path().read_bytes()).hexdigest() == SHIPPED_VOCAB_SHA256
    assert SHIPPED_VOCAB_SHA256 == "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"


def test_vocab_size_and_special_ids(tok):
    assert tok.vocab_size == 49408
    assert len(tok._merges) == 48894
    assert (tok.sot_token_id, tok.eot_token_id) == (SOT, EOT)
    assert tok.encode("a") == [A_ID]


def test_matches_reference_fixture(tok, preprocess_fixture):
    text = preprocess_fixture["text"]
    assert len(text["strings"]) == 22
    assert torch.equal(tok(text["strings"]), text["tokens"])
    assert [len(tok.encode(s)) for s in text["strings"]] == text["n_bpe_tokens_before_truncation"]


def test_decode_matches_reference_fixture(tok, preprocess_fixture):
    text = preprocess_fixture["text"]
    for row, expected in zip(text["tokens"], text["decoded"]):
        end = int((row == EOT).nonzero()[-1]) + 1
        assert tok.decode(row[:end]) == expected


def test_matches_parity_fixture(parity_fixture):
    assert torch.equal(tokenize(parity_fixture["texts"]), parity_fixture["inputs"]["text"])


def test_context_is_filled_exactly_then_truncated(tok):
    full = tok("a " * 75)[0]
    assert full.tolist() == [SOT] + [A_ID] * 75 + [EOT]
    assert torch.equal(tok("a " * 76)[0], full)  # the 76th "a" is dropped, EOT stays last
    short = tok("a " * 74)[0]
    assert short.tolist() == [SOT] + [A_ID] * 74 + [EOT, 0]


def test_custom_context_length(tok):
    ids = tok.encode("the quick brown fox jumps over the lazy dog")
    assert tok("the quick brown fox jumps over the lazy dog", context_length=6)[0].tolist() == [SOT, *ids[:4], EOT]
    assert torch.equal(tok("a dog", context_length=10)[0], tok("a dog")[0, :10])
    assert Tokenizer(context_length=5)(["a", "b"]).shape == (2, 5)


def test_batched_equals_single(tok, preprocess_fixture):
    texts = [*preprocess_fixture["text"]["strings"], "a photo of a dog.", "Two dogs, one frisbee!"]
    batch = tok(texts)
    assert batch.dtype == torch.int64 and batch.shape == (len(texts), 77)
    assert torch.equal(batch, torch.cat([tok(t) for t in texts]))
    assert torch.equal(tok(tuple(texts)), batch)
    assert tok([]).shape == (0, 77)


def test_special_tokens_typed_by_a_user(tok):
    assert tok.encode("<|endoftext|>") == [EOT]
    assert tok.encode("<|STARTOFTEXT|>x") == [SOT, *tok.encode("x")]


def test_every_whole_word_token_encodes_to_itself(tok):
    """What makes the whole-word shortcut exact: BPE of any whole-word token's bytes gives that one token."""
    words = {t: i for t, i in tok._encoder.items() if t.endswith(END_OF_WORD)}
    assert len(words) == 34483 == len(tok._whole_words)
    wrong = [t for t, i in words.items() if tok._merge(t[: -len(END_OF_WORD)]) != (i,)]
    assert wrong == []


def test_whitespace_collapse_matches_re():
    """str.split() (used for cleaning) splits on exactly the characters that the reference's re `\\s` matches."""
    everything = "".join(map(chr, range(0x110000)))
    assert set(re.findall(r"\s", everything)) == {c for c in everything if c.isspace()}


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
def test_fast_path_skips_ftfy_only_when_it_cannot_matter(text):
    if not needs_ftfy(text):
        assert " ".join(clean_words(text)) == reference_clean(text)
        assert ftfy.fix_text(text).split() == text.split()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZ \t\n\r\x0b\x0c\x1b\x1c\x7f\x00&;#<>'.")), max_size=30))
def test_fast_path_on_whitespace_and_control_characters(text):
    if not needs_ftfy(text):
        assert " ".join(clean_words(text)) == reference_clean(text)


def test_needs_ftfy_examples():
    assert not needs_ftfy("A photo of a dog.\n")
    for text in ["Tom &amp; Jerry", "café", "a\x0bb", "a\x1b[31mb", "a\x7f", "\x00"]:
        assert needs_ftfy(text)


TRICKY = ["a", "Z", " ", "\t", "\n", "&amp;", "&lt;", "'s", "'LL", "'", ".", "!!", "1", "23", "é", "É", "ß", "İ",
          "ﬁ", "ａ", "Ã©", "\u00a0", "\u200b", "\u2028", "\x85", "\x0b", "🐶", "👍🏽", "中文", "<|endoftext|>",
          "<|startoftext|>", "<|", "photo", "aaaa", "llll", "ssss", "\u0301", "\ud800"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TRICKY) | st.text(max_size=4), max_size=12).map("".join))
def test_shortcuts_change_no_id(tok, text):
    """Cache, word splitting, ftfy skipping and whole-word lookup give the ids of the plain pipeline."""
    assert tok.encode(text) == plain_encode(tok, text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.from_regex(r"[a-zA-Z]{1,12}", fullmatch=True), min_size=1, max_size=10),
       st.sampled_from([" ", "  ", "\t", "\n "]))
def test_decode_round_trips_cleaned_text(tok, words, sep):
    text = sep.join(words)
    assert tok.decode(tok.encode(text)) == " ".join(w.lower() for w in words) + " "


def test_decode_takes_tensors_and_rejects_bad_ids(tok):
    assert tok.decode(torch.tensor([SOT, A_ID, EOT])) == "<|startoftext|>a <|endoftext|>"
    for bad in ([-1], [49408], ["a"], [1.5]):
        with pytest.raises(OpenBindInputError, match="not a token id"):
            tok.decode(bad)
    with pytest.raises(OpenBindInputError, match="1-D"):
        tok.decode(torch.zeros(2, 3, dtype=torch.long))


def test_bounded_cache_gives_the_same_ids(tok):
    small = Tokenizer(cache_size=4)
    texts = [f"word{i} thing{i % 7}, other{i}." for i in range(50)]
    assert torch.equal(small(texts), tok(texts))
    assert len(small._cache) <= 4


def test_bad_input_names_the_item(tok):
    with pytest.raises(OpenBindInputError, match="None"):
        tokenize(None)
    with pytest.raises(OpenBindInputError, match=r"^3: text #1 is a int"):
        tok(["fine", 3])
    with pytest.raises(OpenBindInputError, match="sequence of str"):
        tok(b"bytes")
    with pytest.raises(OpenBindInputError, match="expected a str"):
        tok.encode(None)
    for length in (1, "77", 7.0, True):
        with pytest.raises(OpenBindInputError, match="context_length"):
            tok("a", context_length=length)


def test_custom_vocab_file(tmp_path):
    """A different vocabulary works, without the whole-word shortcut (proven for the shipped file only)."""
    with gzip.open(default_vocab_path(), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    small_path = tmp_path / "small.txt.gz"
    with gzip.open(small_path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines[:1001]))
    small = Tokenizer(small_path)
    assert small.vocab_size == 512 + 1000 + 2 and small._whole_words == {}
    ids = small.encode("Hello world")
    assert max(ids) < small.vocab_size and small.decode(ids) == "hello world "
    assert len(ids) > len(Tokenizer(str(default_vocab_path())).encode("Hello world"))

    broken = tmp_path / "broken.txt.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(OpenBindInputError, match="cannot read"):
        Tokenizer(broken)


def test_default_tokenizer_is_built_once_under_threads(monkeypatch):
    monkeypatch.setattr(tokenizer_module, "_default", None)
    seen: list[Tokenizer] = []
    threads = [threading.Thread(target=lambda: seen.append(default_tokenizer())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and all(t is seen[0] for t in seen)
    assert tokenize("a dog").tolist() == [[SOT, A_ID, 1929, EOT] + [0] * 73]
