"""The ImageBind paper's benchmarks on the datasets as their publishers ship them (see docs/evaluation.md).

Each module reads one family of published layouts into a `TestSet` and registers its `Benchmark`s; `run.py`
embeds a test set with the model's own transforms (cached on disk), scores it by the paper's protocol and writes
the results. `openbind eval list` shows them.
"""

from openbind.eval.benchmarks.base import Benchmark, TestSet, all_benchmarks, get_benchmark, register_benchmark
from openbind.eval.benchmarks.run import Runner, evaluate, evaluate_table2

__all__ = [
    "Benchmark",
    "Runner",
    "TestSet",
    "all_benchmarks",
    "evaluate",
    "evaluate_table2",
    "get_benchmark",
    "register_benchmark",
]

# The paper's benchmarks register themselves on import.
from openbind.eval.benchmarks import (  # noqa: E402, F401, I001
    imagenet, places365, kinetics, msrvtt, sunrgbd, audioset, vggsound, esc50, llvip, ego4d, clotho,
)
