"""The ImageBind paper's benchmarks on the datasets as their publishers ship them (see docs/evaluation.md)."""
