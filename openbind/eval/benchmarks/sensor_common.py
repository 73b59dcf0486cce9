"""What the depth, thermal and IMU benchmark readers share: the root check, `--classes` overrides, per-item
transforms built on the model's options, and MATLAB files of either format."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openbind.errors import OpenBindInputError


def dataset_dir(root: str | os.PathLike, what: str) -> Path:
    """`root` as a resolved directory, or an error saying which dataset folder was expected."""
    path = Path(root)
    if not path.is_dir():
        raise OpenBindInputError(str(path), f"not a directory; give the {what} folder")
    return path.resolve()


def override_classes(
    classes: list[list[str]] | None, default: Sequence[Sequence[str]], benchmark: str
) -> list[list[str]]:
    """The prompt names of each class: the built-in ones, or `--classes` given in the same (label) order."""
    if classes is None:
        return [list(names) for names in default]
    if len(classes) != len(default) or not all(classes):
        raise ValueError(
            f"{benchmark} has {len(default)} classes (in label order); the class list gives {len(classes)}"
            + ("" if all(classes) else " with an empty class")
        )
    return [list(names) for names in classes]


def checked_options(factory: Callable[..., Any], options: dict[str, Any], kind: str) -> Any:
    """`factory(**options)`, with unknown option names reported as ValueError like bad values are."""
    try:
        return factory(**options)
    except TypeError as error:
        raise ValueError(f"bad {kind} options {sorted(options)}: {error}") from None


def read_mat(path: Path, names: Sequence[str]) -> dict[str, Any]:
    """Variables of a MATLAB file, v5 (scipy) or v7.3 (HDF5, h5py): numeric arrays flattened to 1-D, cell arrays
    of strings as lists of str. A missing variable or an unreadable file raises OpenBindInputError."""
    import h5py

    if not path.is_file():
        raise OpenBindInputError(str(path), "MATLAB file not found")
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                return {name: _hdf5_value(f, _variable(f, name, path)) for name in names}
        from scipy.io import loadmat

        variables = loadmat(path, variable_names=list(names))
        return {name: _v5_value(_variable(variables, name, path)) for name in names}
    except OpenBindInputError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise OpenBindInputError(str(path), f"cannot read the MATLAB file ({error})") from None


def _variable(variables: Any, name: str, path: Path) -> Any:
    if name not in variables:
        raise OpenBindInputError(str(path), f"no variable {name!r} in this MATLAB file")
    return variables[name]


def _hdf5_value(f: Any, dataset: Any) -> Any:
    """A v7.3 variable: a cell array is a dataset of object references, each to a uint16 character array."""
    import h5py

    data = dataset[()]
    if data.dtype == h5py.ref_dtype:
        return ["".join(map(chr, np.asarray(f[ref][()]).ravel())) for ref in data.ravel()]
    return np.asarray(data).ravel()


def _v5_value(value: np.ndarray) -> Any:
    if value.dtype == object:
        return [_v5_string(cell) for cell in value.ravel()]
    return np.asarray(value).ravel()


def _v5_string(cell: Any) -> str:
    array = np.asarray(cell)
    if array.size == 0:
        return ""
    if array.dtype.kind != "U":
        raise ValueError(f"expected a cell array of strings, found a cell of {array.dtype}")
    return "".join(array.ravel().tolist())
