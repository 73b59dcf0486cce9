"""Every loader answers bad input with OpenBindInputError and nothing else, and never hangs (hypothesis).

Random bytes (raw and behind plausible file headers), random arrays of any dtype and shape, and odd Python
objects go into the image, video, audio, depth, thermal, IMU and text loaders.
"""

from __future__ import annotations

import io
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import openbind.preprocess as P
from openbind.errors import OpenBindInputError
from openbind.io.imu import parse_imu_csv

MODALITIES = ["vision", "video", "audio", "depth", "thermal", "imu", "text"]
HEADERS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC",
           b"OggS", b"\x00\x00\x00\x18ftypmp42", b"\x93NUMPY\x01\x00", b"t,ax,ay,az,gx,gy,gz\n"]  # fmt: skip
FUZZ = settings(max_examples=25, deadline=10_000, suppress_health_check=[HealthCheck.too_slow])

TRANSFORMS = {m: P.transform_for(m) for m in MODALITIES}


def check(modality: str, item: object) -> None:
    try:
        out = TRANSFORMS[modality](item)
    except OpenBindInputError:
        return
    assert isinstance(out, torch.Tensor) and torch.isfinite(out).all()


@pytest.mark.parametrize("modality", MODALITIES)
@FUZZ
@given(header=st.sampled_from(HEADERS), body=st.binary(max_size=2048))
def test_random_bytes(modality, header, body):
    check(modality, header + body)
    check(modality, io.BytesIO(header + body))


@pytest.mark.parametrize("modality", ["vision", "depth", "thermal", "imu"])
@FUZZ
@given(
    array=hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_, np.complex64]),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=12),
    )
)
def test_random_arrays(modality, array):
    check(modality, array)
    check(modality, torch.from_numpy(array) if array.dtype != np.uint16 else array)


@pytest.mark.parametrize("modality", ["audio", "imu"])
@FUZZ
@given(
    array=hnp.arrays(dtype=st.sampled_from([np.float32, np.int16, np.float64]),
                     shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=64)),
    rate=st.integers(-5, 96_000),
)  # fmt: skip
def test_random_waveforms_with_rates(modality, array, rate):
    check(modality, (array, rate))


CSV_CELLS = st.text(alphabet="0123456789.eE+-_ \"'\x00naifINF\u0661\uff11", max_size=8)


@FUZZ
@given(
    header=st.sampled_from(["t,ax,ay,az,gx,gy,gz", "ax;ay;az;gx;gy;gz;label", ""]),
    rows=st.lists(st.lists(CSV_CELLS, min_size=5, max_size=8), max_size=12),
    delimiter=st.sampled_from([",", ";", "\t"]),
)
def test_random_csv_cells(header, rows, delimiter):
    """IMU CSV text raises only OpenBindInputError; numpy's parser and the cell-by-cell one agree (without
    quotes, which only the cell-by-cell one reads), and every data line is one row."""
    text = header.replace(",", delimiter).replace(";", delimiter) + "\n"
    text += "\n".join(delimiter.join(row) for row in rows)
    try:
        samples, timestamps = parse_imu_csv(text)
    except OpenBindInputError:
        return
    if '"' in text:
        return
    with mock.patch.object(np, "loadtxt", side_effect=ValueError):
        cell_by_cell = parse_imu_csv(text)
    data_lines = [line for line in text.splitlines()[1 if header else 0 :] if line.strip()]
    assert samples.dtype == np.float64 and samples.shape == (len(data_lines), 6)
    assert np.array_equal(samples, cell_by_cell[0], equal_nan=True)
    assert (timestamps is None) == (cell_by_cell[1] is None) == ("t" not in header)
    assert timestamps is None or np.array_equal(timestamps, cell_by_cell[1], equal_nan=True)


@pytest.mark.parametrize("modality", MODALITIES)
@pytest.mark.parametrize("item", [None, 3, 2.5, [], {}, object(), "", "/nonexistent/file.bin", b""])
def test_odd_python_objects(modality, item):
    if modality == "text" and isinstance(item, str):
        assert TRANSFORMS["text"](item).shape == (77,)  # any string is valid text
        return
    check(modality, item)


def test_loader_with_workers_keeps_good_items_and_reports_bad(tmp_path):
    from PIL import Image

    good = tmp_path / "good.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    items = [str(good), str(bad), str(good), str(tmp_path / "missing.jpg"), str(good)]
    batches = list(P.loader("vision", items, batch_size=2, num_workers=2))
    kept = [i for b in batches for i in b.kept]
    failed = [(f.index, type(f.error)) for b in batches for f in b.failed]
    assert kept == [0, 2, 4]
    assert failed == [(1, OpenBindInputError), (3, OpenBindInputError)]
    expected = P.vision([str(good)])[0]
    assert all(torch.equal(row, expected) for b in batches for row in b.tensor)
