"""The input benchmarks, the machine-scaling control and the search index benchmark run end to end in their --quick mode (a smoke run, not a
timing: numbers are not checked, only that every row is measured), so that a change to the API they drive cannot
leave them broken."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize(
    "script, args, rows",
    [
        ("bench_vision_inputs.py", ["--no-reference"], ["images 640x480 JPEG", "videos 4 s 320x240 25 fps"]),
        (
            "bench_audio_inputs.py",
            ["--resamplers", "sinc", "--threads", "1", "--formats", "flac", "ogg", "mp3", "m4a"],
            ["| sinc | DataLoader 2 workers", "FLAC files", "OGG files", "MP3 files", "M4A files"],
        ),
        ("bench_other_inputs.py", [], ["depth 640x480", "thermal 640x512 16-bit", "IMU 10 s 200 Hz CSV", "captions"]),
    ],
)
def test_input_benchmark_runs(script, args, rows):
    result = subprocess.run(
        [sys.executable, script, "--quick", *args], cwd=BENCHMARKS, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for row in rows:
        assert row in result.stdout, result.stdout
    assert "2 independent processes" in result.stdout


def test_cpu_scaling_control_runs():
    result = subprocess.run(
        [sys.executable, "bench_cpu_scaling.py", "--quick", "--processes", "2"],
        cwd=BENCHMARKS, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for kernel in ("python", "matmul", "copy-16MB", "copy-256MB"):
        assert f"{kernel} " in result.stdout, result.stdout


def test_eval_input_benchmark_runs():
    result = subprocess.run(
        [sys.executable, "bench_eval_inputs.py", "--quick", "--workers", "1", "2"],
        cwd=BENCHMARKS, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ("esc50 (audio", "sun-d (depth", "k400 (video", "DataLoader 2 workers", "1 process, 1 thread"):
        assert row in result.stdout, result.stdout


def test_index_benchmark_runs():
    env = {**os.environ, "PYTHONPATH": str(BENCHMARKS.parent)}  # this checkout's openbind in the case processes
    result = subprocess.run(
        [sys.executable, "bench_index.py", "--quick"], cwd=BENCHMARKS, capture_output=True, text=True, timeout=300,
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ("3,000 | flat *", "3,000 | hnsw ", "3,000 | ivf_sq8 ", "3,000 | ivf_pq "):
        assert row in result.stdout, result.stdout
