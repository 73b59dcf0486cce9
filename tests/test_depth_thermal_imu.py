"""Loaders of the modalities the reference ships no loader for: depth, thermal, IMU."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from openbind.errors import OpenBindInputError
from openbind.io.image import read_plane
from openbind.io.imu import ImuRecording, parse_imu_csv, read_imu
from openbind.modalities.single_channel import transform as single_channel
from openbind.modalities.batch import BatchResult
from openbind.modalities.depth.transform import (
    KINECT_BASELINE_M,
    KINECT_FOCAL_PX,
    DepthTransform,
    depth_to_metres,
    load_depths,
    transform_rgbd,
)
from openbind.modalities.imu.transform import ImuTransform, load_imus, window_starts
from openbind.modalities.single_channel.transform import crop_geometry, resize_center_crop
from openbind.modalities.thermal.transform import ThermalTransform, load_thermals

BF = KINECT_BASELINE_M * KINECT_FOCAL_PX  # 38.914... pixel-metres
RAW = DepthTransform(max_disparity=None)  # plain disparity, no scaling


def save_png16(path, array):
    Image.fromarray(array.astype(np.uint16)).save(path)
    return path


def imu_samples(seconds: float, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Phone at rest (gravity on z) with ax = t: linear in time, so interpolation of it is exact."""
    t = np.arange(round(seconds * rate)) / rate
    samples = np.zeros((len(t), 6))
    samples[:, 0] = t
    samples[:, 2] = 9.81
    return t, samples


def write_csv(path, header, rows):
    lines = ([",".join(header)] if header else []) + [",".join(f"{v:.9g}" for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------- geometry


def test_crop_geometry_matches_reference_rule():
    assert crop_geometry(200, 300) == ((224, 336), (0, 56))
    assert crop_geometry(480, 640) == ((224, 298), (0, 37))
    assert crop_geometry(299, 224) == ((299, 224), (38, 0))  # round(37.5) = 38
    assert crop_geometry(224, 224) == ((224, 224), (0, 0))


@pytest.mark.parametrize("resample", ["nearest", "bilinear", "bicubic"])
def test_resize_center_crop_is_resize_then_crop(resample, monkeypatch):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (517, 333), dtype=np.uint8))
    (h, w), (top, left) = crop_geometry(517, 333)
    mode = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
            "bicubic": Image.Resampling.BICUBIC}[resample]
    full = np.asarray(image.resize((w, h), mode))[top : top + 224, left : left + 224]
    np.testing.assert_array_equal(np.asarray(resize_center_crop(image, resample)), full)
    # past the size limit only the crop box is resized: same geometry, float32-rounding-level differences
    monkeypatch.setattr(single_channel, "RESIZED_PIXEL_LIMIT", 0)
    plane = Image.fromarray(np.asarray(image, dtype=np.float32), "F")
    boxed = np.asarray(resize_center_crop(plane, resample))
    np.testing.assert_allclose(boxed, np.asarray(plane.resize((w, h), mode))[top : top + 224], atol=0.05)


# ---------------------------------------------------------------- depth


def test_depth_png16_millimetres_to_exact_disparity(tmp_path):
    depth_mm = np.full((224, 224), 1500)
    depth_mm[:10, :] = 0  # missing depth
    out = RAW(save_png16(tmp_path / "d.png", depth_mm))
    assert out.shape == (1, 224, 224) and out.dtype == torch.float32
    assert torch.all(out[0, :10] == 0)
    np.testing.assert_allclose(out[0, 10:].numpy(), BF / 1.5, rtol=1e-6)


def test_depth_npy_metres_plane_exact_values(tmp_path):
    x = np.arange(224)
    depth = np.tile(0.4 + x / 50.0, (224, 1))  # a plane tilted along x, 0.4 m .. 4.86 m
    np.save(tmp_path / "d.npy", depth)
    expected = BF / depth
    np.testing.assert_allclose(RAW(tmp_path / "d.npy")[0].numpy(), expected, rtol=1e-6)
    # default: Omnivore's DepthNorm, clamp at 75 then / 75 (0.4 m is nearer than BF / 75 = 0.519 m)
    default = DepthTransform()(tmp_path / "d.npy")[0].numpy()
    np.testing.assert_allclose(default, np.minimum(expected, 75.0) / 75.0, rtol=1e-6)
    assert default[0, 0] == 1.0
    normalized = DepthTransform(mean=0.5, std=0.25)(depth)[0].numpy()
    np.testing.assert_allclose(normalized, (np.minimum(expected, 75.0) / 75.0 - 0.5) / 0.25, atol=1e-6)


def test_depth_sunrgbd_encoding_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    depth_mm = rng.integers(1, 8000, size=(240, 320)).astype(np.uint32)
    depth_mm[0, :4] = [8191, 8192, 9000, 65535]  # values whose top bits wrap around
    raw = ((depth_mm << 3) | (depth_mm >> 13)) & 0xFFFF
    path = save_png16(tmp_path / "sun.png", raw)
    metres = depth_to_metres(read_plane(path, to_gray=False), "sunrgbd", path)
    np.testing.assert_array_equal(metres, depth_mm / 1000.0)
    plain = save_png16(tmp_path / "mm.png", depth_mm)
    sun = DepthTransform(encoding="sunrgbd")
    assert torch.equal(sun(path), DepthTransform(encoding="mm")(plain))
    assert not torch.equal(DepthTransform()(path), sun(path))  # read as plain mm it is 8x too far


def test_depth_invalid_pixels_and_max_depth():
    depth = np.full((224, 224), 2.0)
    depth[0, :4] = [0.0, -1.0, np.nan, np.inf]
    depth[1, 0] = 20.0
    out = RAW(depth)[0]
    assert out[0, :4].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert out[1, 0].item() == pytest.approx(BF / 20.0, rel=1e-6)
    clipped = DepthTransform(max_disparity=None, max_depth_m=8.0)(depth)[0]
    assert clipped[1, 0].item() == pytest.approx(BF / 8.0, rel=1e-6)
    assert clipped[0, :4].tolist() == [0.0, 0.0, 0.0, 0.0]
    # a tensor input with a channel dim gives the same result
    assert torch.allclose(RAW(torch.from_numpy(depth).float()[None]), RAW(depth), rtol=1e-6, atol=0)


def test_depth_nearest_keeps_holes_bilinear_blends():
    depth = np.full((100, 150), 2.0)
    depth[:, 50:] = 0.0
    nearest = RAW(depth)[0]
    values = np.unique(nearest.numpy())
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(BF / 2.0, rel=1e-6)
    bilinear = DepthTransform(max_disparity=None, resample="bilinear")(depth)[0]
    values = bilinear.numpy()
    assert ((values > 0.1) & (values < BF / 2.0 - 0.1)).any()  # zeros bleed into the valid side


def test_depth_rgbd_pair_crops_the_same_box():
    width, height, edge = 300, 200, 120  # non-square: crop box is columns 56..280 of the 336-wide resize
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[:, :edge] = 255
    depth = np.full((height, width), 3.0)
    depth[:, :edge] = 1.0
    image_tensor, depth_tensor = transform_rgbd(Image.fromarray(rgb), depth)
    assert image_tensor.shape == (3, 224, 224) and depth_tensor.shape == (1, 224, 224)
    # the edge lands at 120 * 336 / 300 - 56 = 78.4 in crop coordinates, in both
    image_row = image_tensor[0, 100].numpy()
    image_edge = int(np.argmax(image_row < (image_row.max() + image_row.min()) / 2))
    depth_row = depth_tensor[0, 100].numpy()
    depth_edge = int(np.argmax(depth_row < depth_row.max()))
    assert image_edge == depth_edge == 78
    # a half-resolution depth map (same aspect) lands on the same grid
    _, half = transform_rgbd(Image.fromarray(rgb), depth[::2, ::2])
    half_row = half[0, 100].numpy()
    assert int(np.argmax(half_row < half_row.max())) == 78
    with pytest.raises(OpenBindInputError, match="aspect ratio"):
        transform_rgbd(Image.fromarray(rgb), depth[:, :150])


def test_depth_refuses_8bit_and_colour(tmp_path):
    Image.fromarray(np.full((20, 20), 9, np.uint8)).save(tmp_path / "d8.png")
    with pytest.raises(OpenBindInputError, match="8-bit"):
        DepthTransform()(tmp_path / "d8.png")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(OpenBindInputError, match="single-channel"):
        DepthTransform()(tmp_path / "rgb.png")
    with pytest.raises(OpenBindInputError, match="SUN RGB-D"):
        DepthTransform(encoding="sunrgbd")(np.ones((20, 20), np.float32))


def test_depth_every_input_kind_of_a_16bit_map_gives_the_same_output(tmp_path):
    """Files, bytes, binary files and PIL images in each 16-bit mode decode to the same values."""
    values = np.random.default_rng(4).integers(1, 9000, (60, 80)).astype(np.uint16)
    path = save_png16(tmp_path / "d.png", values)
    expected = DepthTransform()(path)
    for item in (
        str(path),
        path.read_bytes(),
        io.BytesIO(path.read_bytes()),
        Image.frombytes("I;16B", (80, 60), values.astype(">u2").tobytes()),
        Image.fromarray(values.astype(np.int32), "I"),
        values,
    ):
        assert torch.equal(DepthTransform()(item), expected), type(item)


# ---------------------------------------------------------------- thermal


def test_thermal_8bit_matches_pil_image_pipeline(tmp_path):
    rng = np.random.default_rng(2)
    gray = rng.integers(0, 256, size=(180, 240), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "t.png")
    out = ThermalTransform()(tmp_path / "t.png")
    resized = Image.fromarray(gray).resize((298, 224), Image.Resampling.BICUBIC)
    expected = np.asarray(resized, dtype=np.float32)[:, 37:261] / 255.0
    assert out.shape == (1, 224, 224)
    np.testing.assert_array_equal(out[0].numpy(), expected)
    # gray stored as RGB (LLVIP's JPEG layout) converts to the same luminance
    Image.fromarray(np.repeat(gray[..., None], 3, axis=2)).save(tmp_path / "rgb.png")
    assert torch.equal(ThermalTransform()(tmp_path / "rgb.png"), out)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_thermal_16bit_scaling(tmp_path, suffix):
    plane = np.full((224, 224), 30000, dtype=np.uint16)
    plane[0, 0] = 60000
    path = save_png16(tmp_path / f"t16{suffix}", plane)
    out = ThermalTransform()(path)[0]
    assert out[5, 5].item() == pytest.approx(30000 / 65535, rel=1e-6)
    by_max = ThermalTransform(scale="max")(path)[0]
    assert by_max[5, 5].item() == pytest.approx(0.5, rel=1e-6)
    assert by_max[0, 0].item() == pytest.approx(1.0, rel=1e-6)
    normalized = ThermalTransform(mean=0.5, std=0.25)(path)[0]
    assert normalized[5, 5].item() == pytest.approx((30000 / 65535 - 0.5) / 0.25, rel=1e-5)


def test_thermal_float_range_and_batch():
    batch = load_thermals([np.full((50, 80), 0.25, np.float32), torch.full((1, 80, 50), 0.75)])
    assert batch.shape == (2, 1, 224, 224)
    assert torch.allclose(batch[0], torch.tensor(0.25)) and torch.allclose(batch[1], torch.tensor(0.75))
    with pytest.raises(OpenBindInputError, match=r"not in \[0, 1\]"):
        ThermalTransform()(np.full((10, 10), 300.0))
    assert ThermalTransform(scale="max")(np.full((10, 10), 300.0)).max().item() == pytest.approx(1.0)


# ---------------------------------------------------------------- IMU


def test_imu_csv_sine_with_jittered_timestamps(tmp_path):
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.uniform(0.004, 0.012, size=800))  # ~125 Hz, non-uniform
    t = t[t < 6.0] + 100.0  # absolute clock
    f = 1.5
    columns = {"gz": 0.1 * np.cos(2 * np.pi * f * t), "t": t, "ax": np.sin(2 * np.pi * f * t),
               "ay": np.zeros_like(t), "az": np.full_like(t, 9.81), "gx": np.zeros_like(t), "gy": np.zeros_like(t)}
    path = write_csv(tmp_path / "imu.csv", list(columns), np.stack(list(columns.values()), axis=1))
    out = ImuTransform()(path)
    assert out.shape == (1, 6, 2000) and out.dtype == torch.float32
    query = t[0] + np.arange(2000) * 5.0 / 2000
    np.testing.assert_allclose(out[0, 0].numpy(), np.sin(2 * np.pi * f * query), atol=2e-3)
    np.testing.assert_allclose(out[0, 5].numpy(), 0.1 * np.cos(2 * np.pi * f * query), atol=2e-4)
    np.testing.assert_allclose(out[0, 2].numpy(), 9.81, rtol=1e-6)


def test_imu_csv_without_timestamps_and_headerless(tmp_path):
    _, samples = imu_samples(5.0, 200.0)
    named = write_csv(tmp_path / "named.csv", ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"], samples)
    bare = write_csv(tmp_path / "bare.csv", None, samples)
    with pytest.raises(OpenBindInputError, match="sample_rate"):
        ImuTransform()(named)
    transform = ImuTransform(sample_rate=200.0)
    expected = np.arange(2000) * 0.0025  # ax = t, interpolated exactly; the last 0.0025 s holds the edge
    expected[-1] = samples[-1, 0]
    for path in (named, bare):
        np.testing.assert_allclose(transform(path)[0, 0].numpy(), expected, atol=1e-6)


def test_imu_time_column_units(tmp_path):
    t, samples = imu_samples(5.0, 100.0)
    table = np.column_stack([t * 1000.0, samples])
    ms = write_csv(tmp_path / "ms.csv", ["t_ms", "ax", "ay", "az", "gx", "gy", "gz"], table)
    assert np.allclose(read_imu(ms).timestamps, t)
    wrong = write_csv(tmp_path / "wrong.csv", ["time", "ax", "ay", "az", "gx", "gy", "gz"], table)
    with pytest.raises(OpenBindInputError, match="seconds"):
        read_imu(wrong)


def test_imu_layouts_npy_and_tensor(tmp_path):
    _, samples = imu_samples(5.0, 400.0)
    np.save(tmp_path / "imu.npy", samples.T)  # (6, T)
    transform = ImuTransform(sample_rate=400.0)
    a = transform(tmp_path / "imu.npy")
    assert torch.equal(a, transform(torch.from_numpy(samples)))
    np.testing.assert_allclose(a[0].numpy(), samples.T, atol=1e-6)  # already 400 Hz: identity
    with pytest.raises(OpenBindInputError, match="ambiguous"):
        transform(np.zeros((6, 6)))


def test_imu_windows_of_a_12s_recording():
    _, samples = imu_samples(12.0, 100.0)
    assert window_starts(12.0, "all") == [0.0, 5.0, 7.0]
    assert window_starts(12.0, 3) == [0.0, 3.5, 7.0]
    assert window_starts(12.0, 1) == [0.0]
    windows = ImuTransform(sample_rate=100.0, clips="all")(samples)
    assert windows.shape == (3, 6, 2000)
    steps = np.arange(2000) * 0.0025
    np.testing.assert_allclose(windows[1, 0].numpy(), 5.0 + steps, atol=1e-5)
    end = windows[2, 0].numpy()
    np.testing.assert_allclose(end[:-4], 7.0 + steps[:-4], atol=1e-5)  # the last 10 ms hold t = 11.99
    assert end[-1] == pytest.approx(11.99, abs=1e-5)
    batch = load_imus([samples, samples], transform=ImuTransform(sample_rate=100.0))
    assert batch.shape == (2, 6, 2000)
    assert load_imus([samples], transform=ImuTransform(sample_rate=100.0), clips=3).shape == (1, 3, 6, 2000)
    with pytest.raises(OpenBindInputError, match="window counts"):
        load_imus([samples, samples[:300]], transform=ImuTransform(sample_rate=100.0), clips="all")


def test_imu_short_recording_padding():
    _, samples = imu_samples(2.0, 100.0)
    edge = ImuTransform(sample_rate=100.0)(samples)[0]
    zero = ImuTransform(sample_rate=100.0, pad="zero")(samples)[0]
    assert edge[2, -1].item() == pytest.approx(9.81) and edge[0, -1].item() == pytest.approx(1.99)
    assert torch.all(zero[:, 800:] == 0) and zero[2, 799].item() == pytest.approx(9.81)


def test_imu_nan_policy_and_units():
    _, samples = imu_samples(5.0, 100.0)
    samples[100:103, 0] = np.nan
    with pytest.raises(OpenBindInputError, match="NaN at sample 100"):
        ImuTransform(sample_rate=100.0)(samples)
    filled = ImuTransform(sample_rate=100.0, nan="interpolate")(samples)[0, 0].numpy()
    np.testing.assert_allclose(filled[:1996], np.arange(1996) * 0.0025, atol=1e-6)
    _, g_units = imu_samples(5.0, 100.0)
    g_units[:, 0], g_units[:, 2] = 0.0, 1.0
    with pytest.raises(OpenBindInputError, match="m/s\\^2"):
        ImuTransform(sample_rate=100.0)(g_units)
    assert ImuTransform(sample_rate=100.0, check_units=False)(g_units).shape == (1, 6, 2000)
    _, degrees = imu_samples(5.0, 100.0)
    degrees[:, 3] = 300.0
    with pytest.raises(OpenBindInputError, match="rad/s"):
        ImuTransform(sample_rate=100.0)(degrees)
    normalized = ImuTransform(sample_rate=100.0, mean=(0, 0, 9.81, 0, 0, 0), std=(1, 1, 2, 1, 1, 1))(
        imu_samples(5.0, 100.0)[1]
    )
    assert torch.allclose(normalized[0, 2], torch.zeros(2000), atol=1e-6)


def test_imu_csv_header_aliases():
    text = (
        "# comment\n"
        "timestamp;Gyro_X [rad/s];gyro_y;gyro_z;Acc_X (m/s^2);acc_y;acc_z;mag_x\n"
        "0;1;2;3;4;5;6;7\n"
        "0.01;1;2;3;4;5;;7\n"
    )
    samples, timestamps = parse_imu_csv(text)
    assert samples[0].tolist() == [4, 5, 6, 1, 2, 3] and math.isnan(samples[1, 2])
    assert timestamps.tolist() == [0.0, 0.01]
    with pytest.raises(OpenBindInputError, match="both name ax"):
        parse_imu_csv("ax,acc_x,ay,az,gx,gy,gz\n1,2,3,4,5,6,7\n")
    with pytest.raises(OpenBindInputError, match="2 time columns"):
        parse_imu_csv("t,time_ms,ax,ay,az,gx,gy,gz\n1,2,3,4,5,6,7,8\n")


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_imu_csv_fast_and_cell_by_cell_parsing_give_the_same_bits(monkeypatch, delimiter):
    rng = np.random.default_rng(0)
    table = rng.standard_normal((300, 8)) * 10.0 ** rng.integers(-12, 12, (300, 8))
    cells = [[repr(float(v)) if j % 2 else f"{v:.7g}" for j, v in enumerate(row)] for row in table]
    cells[5][7] = "walking"  # a text column that names no channel: skipped, never parsed
    text = delimiter.join(["gz", "t_ms", "ax", "ay", "az", "gx", "gy", "label"]) + "\n"
    text += "\n".join(delimiter.join(row) for row in cells) + "\n"
    calls = []
    loadtxt = np.loadtxt
    monkeypatch.setattr(np, "loadtxt", lambda *args, **kwargs: calls.append(1) or loadtxt(*args, **kwargs))
    fast = parse_imu_csv(text)
    assert calls == [1]  # read by numpy

    def refuse(*args, **kwargs):
        raise ValueError("refused")

    monkeypatch.setattr(np, "loadtxt", refuse)
    cell_by_cell = parse_imu_csv(text)
    expected = np.array([[float(row[c]) for c in (2, 3, 4, 5, 6, 0)] for row in cells])
    for samples, timestamps in (fast, cell_by_cell):
        assert np.array_equal(samples.view(np.int64), expected.view(np.int64))
        assert np.array_equal(timestamps, np.array([float(row[1]) for row in cells]) * 1e-3)


def test_imu_csv_rows_numpy_refuses_are_read_cell_by_cell():
    header = "t,ax,ay,az,gx,gy,gz,note\n"
    quoted = parse_imu_csv(header + '0,1,2,3,4,5,6,"a, b"\n0.01,1,2,3,4,5,6,c\n')  # a delimiter inside quotes
    assert quoted[0].tolist() == [[1, 2, 3, 4, 5, 6]] * 2 and quoted[1].tolist() == [0.0, 0.01]
    spanning = parse_imu_csv(header + '0,1,2,3,4,5,6,"two\nlines"\n0.01,1,2,3,4,5,6,c\n')  # one row, 2 lines
    assert spanning[0].tolist() == [[1, 2, 3, 4, 5, 6]] * 2 and spanning[1].tolist() == [0.0, 0.01]
    unicode_digits = parse_imu_csv(header + "0,١,2,3,4,5,6,x\n")  # float() reads Arabic-Indic digits
    assert unicode_digits[0].tolist() == [[1, 2, 3, 4, 5, 6]]
    with pytest.raises(OpenBindInputError, match="data row 2 has 9 columns"):
        parse_imu_csv(header + "0,1,2,3,4,5,6,x\n1,1,2,3,4,5,6,x,y\n")


# ---------------------------------------------------------------- bad input


def bad_inputs(tmp_path):
    """(loader call, substring of the reason) for every class of bad input."""
    good = np.full((30, 40), 1000, np.uint16)
    png = save_png16(tmp_path / "good.png", good)
    data = png.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.png").write_bytes(b"\x89PNG not really" * 10)
    (tmp_path / "empty.png").write_bytes(b"")
    np.save(tmp_path / "ok.npy", np.ones((30, 40)))
    (tmp_path / "trunc.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:100])
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    frames = [Image.fromarray(good), Image.fromarray(good)]
    frames[0].save(tmp_path / "multi.tif", save_all=True, append_images=frames[1:])
    t, samples = imu_samples(5.0, 100.0)
    header = ["t", "ax", "ay", "az", "gx", "gy", "gz"]
    backwards = write_csv(tmp_path / "back.csv", header, np.column_stack([t[::-1], samples]))
    repeated = np.column_stack([t, samples])
    repeated[10, 0] = repeated[9, 0]
    repeated_csv = write_csv(tmp_path / "rep.csv", header, repeated)
    (tmp_path / "text.csv").write_text("t,ax,ay,az,gx,gy,gz\n0,1,2,x,4,5,6\n")
    (tmp_path / "ragged.csv").write_text("ax,ay,az,gx,gy,gz\n1,2,3,4,5,6\n1,2,3\n")
    (tmp_path / "nochan.csv").write_text("t,ax,ay,az\n0,1,2,3\n")
    (tmp_path / "header.csv").write_text("t,ax,ay,az,gx,gy,gz\n")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x81" * 20)
    wav = tmp_path / "recording.wav"
    wav.write_bytes(b"RIFF....WAVE")
    folder = tmp_path / "folder.png"
    folder.mkdir()
    depth, thermal, imu = DepthTransform(), ThermalTransform(), ImuTransform(sample_rate=100.0)
    return [
        (lambda: depth(tmp_path / "missing.png"), "no such file"),
        (lambda: depth(tmp_path / "empty.png"), "empty file"),
        (lambda: depth(tmp_path / "trunc.png"), "truncated"),
        (lambda: thermal(tmp_path / "garbage.png"), "not a readable image"),
        (lambda: depth(tmp_path / "trunc.npy"), "cannot read .npy"),
        (lambda: depth(tmp_path / "obj.npy"), "cannot read .npy"),
        (lambda: depth(folder), "not a file"),
        (lambda: depth(tmp_path / "multi.tif"), "2 frames"),
        (lambda: depth(tmp_path / "d.exr"), "unsupported file type"),
        (lambda: depth(np.zeros((2, 3, 4, 5))), "expected a 2-D"),
        (lambda: depth(np.zeros((30, 40, 0))), "0 channels"),
        (lambda: depth(np.zeros((0, 40))), "empty map"),
        (lambda: depth(np.ones((30, 40), dtype=bool)), "dtype bool"),
        (lambda: depth(np.ones((30, 40), dtype=complex)), "dtype complex"),
        (lambda: depth(np.ones((30, 40, 3))), "expected (H, W) or (H, W, 1)"),
        (lambda: depth([1, 2, 3]), "unsupported input type"),
        (lambda: thermal(np.ones((30, 40, 2), np.uint8)), "expected (H, W), (H, W, 1) or (H, W, 3)"),
        (lambda: thermal(np.full((30, 40), np.nan)), "NaN"),
        (lambda: thermal(np.full((30, 40), -1.0)), "negative"),
        (lambda: thermal(np.full((30, 40), 70000, np.int32)), "exceed 16 bits"),
        (lambda: imu(tmp_path / "missing.csv"), "no such file"),
        (lambda: imu(tmp_path / "empty.png"), "empty file"),
        (lambda: imu(tmp_path / "ok.npy"), "expected 6 channels"),
        (lambda: imu(tmp_path / "trunc.npy"), "cannot read .npy"),
        (lambda: imu(backwards), "not strictly increasing"),
        (lambda: imu(repeated_csv), "not strictly increasing at sample 10"),
        (lambda: imu(tmp_path / "text.csv"), "'x' is not a number"),
        (lambda: imu(tmp_path / "ragged.csv"), "data row 2 has 3 columns"),
        (lambda: imu(tmp_path / "nochan.csv"), "lacks channel"),
        (lambda: imu(tmp_path / "header.csv"), "no data rows"),
        (lambda: imu(tmp_path / "binary.csv"), "UTF-8"),
        (lambda: imu(np.zeros((1, 6))), "need at least 2"),
        (lambda: imu(np.zeros((100, 0))), "no channels"),
        (lambda: imu(np.zeros((100, 7))), "expected 6 channels"),
        (lambda: imu(np.zeros((100, 6, 1))), "expected (T, 6) or (6, T)"),
        (lambda: imu(np.ones((100, 6), dtype=bool)), "dtype bool"),
        (lambda: imu(np.full((100, 6), np.inf)), "infinite"),
        (lambda: imu(ImuRecording(samples, sample_rate=1.0)), "sample_rate"),
        (lambda: imu(wav), "unsupported file type"),
    ]


def test_every_bad_input_raises_openbind_input_error(tmp_path):
    for call, reason in bad_inputs(tmp_path):
        with pytest.raises(OpenBindInputError) as caught:
            call()
        assert reason in str(caught.value), (reason, str(caught.value))


def test_decompression_bomb_limit(tmp_path):
    path = save_png16(tmp_path / "big.png", np.ones((64, 64)))
    with pytest.raises(OpenBindInputError, match="exceeds the limit"):
        DepthTransform(max_pixels=64 * 64 - 1)(path)
    with pytest.raises(OpenBindInputError, match="exceeds the limit"):
        ThermalTransform(max_pixels=64 * 64 - 1)(Image.open(path))


def test_bad_configuration_is_refused():
    """A bad option is a ValueError at construction naming the option, never the skippable item error."""
    for make, option in (
        (lambda: DepthTransform(encoding="cm"), "encoding"),
        (lambda: DepthTransform(focal_px=0.0), "focal_px"),
        (lambda: DepthTransform(resample="bicubic"), "resample"),
        (lambda: DepthTransform(max_pixels=0), "max_pixels"),
        (lambda: ThermalTransform(mean=0.5), "mean and std"),
        (lambda: ThermalTransform(scale="kelvin"), "scale"),
        (lambda: ImuTransform(clips=0), "clips"),
        (lambda: ImuTransform(mean=(0.0,) * 5, std=(1.0,) * 5), "mean and std"),
        (lambda: ImuTransform(sample_rate=1.0), "sample_rate"),
        (lambda: load_imus([np.zeros((500, 6))], clips=-1), "clips"),
    ):
        with pytest.raises(ValueError, match=option) as caught:
            make()
        assert not isinstance(caught.value, OpenBindInputError), option


def test_batch_skip_reports_bad_items(tmp_path):
    good = save_png16(tmp_path / "good.png", np.full((30, 40), 1000))
    result = load_depths([good, tmp_path / "missing.png", good], on_error="skip")
    assert isinstance(result, BatchResult)
    assert result.tensor.shape == (2, 1, 224, 224) and result.kept == [0, 2]
    assert [f.index for f in result.failed] == [1] and "no such file" in str(result.failed[0].error)
    with pytest.raises(OpenBindInputError, match="batch item 1"):
        load_depths([good, tmp_path / "missing.png"])

    thermal = load_thermals([np.full((8, 8), np.nan), np.zeros((8, 8), np.uint8)], on_error="skip")
    assert thermal.kept == [1] and thermal.tensor.shape == (1, 1, 224, 224)

    _, samples = imu_samples(5.0, 100.0)
    imus = load_imus([np.zeros((6, 6)), samples], transform=ImuTransform(sample_rate=100.0), on_error="skip")
    assert imus.kept == [1] and imus.tensor.shape == (1, 6, 2000)
    assert "ambiguous" in str(imus.failed[0].error)
    none_left = load_imus([np.zeros((6, 6))], transform=ImuTransform(sample_rate=100.0), on_error="skip")
    assert none_left.kept == [] and len(none_left.failed) == 1


@pytest.mark.parametrize("modality", ["depth", "thermal"])
def test_rows_written_in_place_match_fresh_calls(tmp_path, modality):
    """Batch calls write each map into its row of the batch, DataLoader workers into a batch in shared memory."""
    from torch.utils.data import DataLoader

    from openbind.data.items import ItemDataset, collate_items

    rng = np.random.default_rng(0)
    if modality == "depth":
        transform, load = DepthTransform(mean=0.3, std=0.2), load_depths
        items = [save_png16(tmp_path / f"d{i}.png", rng.integers(0, 5000, (30 + i, 40))) for i in range(3)]
    else:
        transform, load = ThermalTransform(mean=0.4, std=0.3), load_thermals
        items = [rng.integers(0, 256, (30, 40 + i), dtype=np.uint8) for i in range(2)]
        items.append(rng.integers(0, 65536, (50, 30), dtype=np.uint16))
    expected = torch.stack([transform(item) for item in items])
    assert transform.fixed_output_shape == (1, 224, 224)
    row = torch.full((1, 224, 224), float("nan"))
    assert transform(items[0], out=row) is row and torch.equal(row, expected[0])
    assert torch.equal(load(items, transform=transform), expected)
    loader = DataLoader(ItemDataset(modality, items, transform), batch_size=2, num_workers=2, collate_fn=collate_items)
    batches = list(loader)
    assert [b.kept for b in batches] == [[0, 1], [2]]
    assert torch.equal(torch.cat([b.tensor for b in batches]), expected)
    with pytest.raises(ValueError, match="contiguous float32"):
        transform(items[0], out=torch.empty(1, 224, 225))


def test_imu_windows_written_in_place_match_fresh_calls():
    from torch.utils.data import DataLoader

    from openbind.data.items import ItemDataset, collate_items
    from openbind.modalities.batch import FirstClip

    rng = np.random.default_rng(1)
    items = [imu_samples(seconds, 100.0)[1] + rng.normal(0, 0.1, (int(seconds * 100), 6)) for seconds in (4, 7, 12)]
    two = ImuTransform(sample_rate=100.0, clips=2, mean=(0.1,) * 6, std=(2.0,) * 6)
    assert two.fixed_output_shape == (2, 6, 2000) and ImuTransform(clips="all").fixed_output_shape is None
    out = torch.full((2, 6, 2000), float("nan"))
    assert two(items[2], out=out) is out and torch.equal(out, two(items[2]))
    with pytest.raises(ValueError, match="fixed window count"):
        ImuTransform(sample_rate=100.0, clips="all")(items[0], out=out)
    first = FirstClip(ImuTransform(sample_rate=100.0))
    assert first.fixed_output_shape == (6, 2000) and FirstClip(two).fixed_output_shape is None
    expected = torch.stack([first(item) for item in items])
    loader = DataLoader(ItemDataset("imu", items, first), batch_size=2, num_workers=2, collate_fn=collate_items)
    assert torch.equal(torch.cat([batch.tensor for batch in loader]), expected)


@pytest.mark.parametrize("patch_norm", [True, False])
def test_patch_norm_decides_whether_flat_levels_survive_the_stem(patch_norm):
    """With the reference's per-patch LayerNorm after a bias-free conv, flat maps of any positive level give
    the same tokens; without it (the world preset's thermal tower) the level reaches the trunk."""
    from openbind.modalities.thermal import ThermalConfig

    torch.manual_seed(0)
    stem = ThermalConfig(width=32, depth=1, heads=2, kernel_size=32, patch_norm=patch_norm).build_stem()
    torch.nn.init.normal_(stem.proj.weight)
    for p in (stem.cls_token, stem.pos_embed):
        torch.nn.init.zeros_(p)
    cool, hot = stem(torch.full((1, 1, 224, 224), 0.3)), stem(torch.full((1, 1, 224, 224), 0.9))
    assert torch.allclose(cool, hot, atol=1e-4) == patch_norm
    assert any("norm" in name for name, _ in stem.named_parameters()) == patch_norm
