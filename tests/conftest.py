"""Shared test fixtures: where the reference fixtures live, and tiny model configs."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference"


def require_shared(*parts: str) -> Path:
    """Path under ../shared/reference, or skip: a user's fresh clone has no ../shared (CI always does)."""
    path = REFERENCE.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference fixture {path} is absent (it lives in ../shared beside the checkout; CI has it)")
    return path


@pytest.fixture(scope="session")
def parity_fixture():
    import torch

    return torch.load(require_shared("parity", "imagebind_official_tiny.pt"), weights_only=False)


@pytest.fixture(scope="session")
def preprocess_fixture():
    import torch

    return torch.load(require_shared("preprocess", "official_outputs.pt"), weights_only=False)


@pytest.fixture(scope="session")
def preprocess_inputs() -> Path:
    return require_shared("preprocess", "inputs")
