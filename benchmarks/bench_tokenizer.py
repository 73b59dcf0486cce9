"""Throughput of openbind's CLIP tokenizer (strings/s, single process).

Corpora are generated deterministically from the shipped vocabulary, so the script needs no download:
- prompts: "a photo of a {name}." for 1,000 names of 1-3 words; a word is a whole-word vocabulary token of
  middling frequency (ranks 2k-30k) or, one time in four, a made-up word that needs the full BPE merge loop;
- captions: 10-20 words drawn with Zipf weights from a list of common caption words (COCO-like); one in ten
  is a middling vocabulary word and one in fifty made up; first letter capitalised, a comma, a final period.
"Cold" builds a fresh tokenizer (its build time is not counted) and times its first pass over the corpus;
"warm" times a pass over the same corpus after the cache has seen it. Each figure is the median of several
repeats, with the configurations alternating inside every repeat.

    .venv/bin/python benchmarks/bench_tokenizer.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from openbind.modalities.text.tokenizer import END_OF_WORD, Tokenizer

CAPTION_WORDS = """a the of on in with and is to at an two man woman people person sitting standing next near
top white black red blue green large small young old table street dog cat plate food water field grass tree
building car bus train truck bike bicycle motorcycle horse sheep cow elephant giraffe zebra bird boat kitchen
room bed couch chair window door wall sign pizza sandwich cake bowl cup glass phone laptop computer screen
holding riding walking playing eating looking flying parked covered filled sits stands lying down up front
side middle group couple child children boy girl men women ball frisbee kite surfboard skateboard snow beach
ocean wave sky clouds city road sidewalk traffic light pole fence park player tennis baseball game bat
wooden metal brown yellow orange pink gray colorful tall little big open empty full some many several three
background inside outside over under behind from while his her their its into onto by other another each""".split()

SYLLABLES = ["ax", "o", "lotl", "quet", "zal", "brim", "ka", "dor", "ith", "pel", "vun", "ser", "ogh", "tra", "myx"]


def whole_words(tokenizer: Tokenizer) -> list[str]:
    """Alphabetic whole-word tokens, most frequent (lowest merge rank) first."""
    tokens = tokenizer._decoder[512 : tokenizer.sot_token_id]
    return [t[: -len(END_OF_WORD)] for t in tokens if t.endswith(END_OF_WORD) and t[:-4].isascii() and t[:-4].isalpha()]


def made_up_word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))


def make_corpora(words: list[str], n: int, seed: int = 0) -> dict[str, list[str]]:
    rng = random.Random(seed)
    middling = words[2000:30000]

    def name_word() -> str:
        return made_up_word(rng) if rng.random() < 0.25 else rng.choice(middling)

    names: set[str] = set()
    while len(names) < n:
        names.add(" ".join(name_word() for _ in range(rng.choice([1, 1, 2, 2, 3]))))
    prompts = [f"a photo of a {name}." for name in sorted(names)]

    weights = [1 / (rank + 2) for rank in range(len(CAPTION_WORDS))]

    def caption_word(word: str) -> str:
        luck = rng.random()
        return made_up_word(rng) if luck < 0.02 else rng.choice(middling) if luck < 0.12 else word

    captions = []
    for _ in range(n):
        caption = [caption_word(w) for w in rng.choices(CAPTION_WORDS, weights, k=rng.randint(10, 20))]
        caption[rng.randrange(3, len(caption) - 2)] += ","
        captions.append(" ".join(caption).capitalize() + ".")
    return {"prompts": prompts, "captions": captions}


def run_single(tokenizer: Tokenizer, texts: list[str]) -> None:
    for text in texts:
        tokenizer(text)


def run_batches(tokenizer: Tokenizer, texts: list[str], batch: int = 256) -> None:
    for start in range(0, len(texts), batch):
        tokenizer(texts[start : start + batch])


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small corpora and 2 repeats (smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per figure (default 7, quick 2)")
    parser.add_argument("--size", type=int, default=None, help="strings per corpus (default 1000, quick 100)")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 7)
    size = args.size or (100 if args.quick else 1000)

    build_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        warm = Tokenizer()
        build_times.append(time.perf_counter() - start)
    corpora = make_corpora(whole_words(warm), size)
    for texts in corpora.values():
        warm(texts)

    modes = {"single strings": run_single, "batches of 256": run_batches}
    times: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(repeats):
        for corpus, texts in corpora.items():
            for mode, run in modes.items():
                cold = Tokenizer()
                times.setdefault((corpus, mode, "cold"), []).append(timed(lambda: run(cold, texts)))
                times.setdefault((corpus, mode, "warm"), []).append(timed(lambda: run(warm, texts)))

    print(f"tokenizer build: {statistics.median(build_times) * 1e3:.0f} ms (median of {repeats})")
    print(f"{size} strings per corpus, median of {repeats} repeats\n")
    print(f"{'corpus':<10} {'mode':<16} {'cache':<6} {'strings/s':>11} {'us/string':>10}")
    for (corpus, mode, cache), seconds in times.items():
        per_string = statistics.median(seconds) / size
        print(f"{corpus:<10} {mode:<16} {cache:<6} {1 / per_string:>11,.0f} {per_string * 1e6:>10.1f}")


if __name__ == "__main__":
    main()
