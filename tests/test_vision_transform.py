"""Image loading and the image transform: parity with the reference, options, input kinds, bad inputs."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from openbind.errors import OpenBindInputError
from openbind.io.image import open_image
from openbind.modalities.batch import BatchResult
from openbind.modalities.vision.transform import ImageTransform, load_images

IMAGE_FILES = [
    "dog_image.jpg",
    "car_image.jpg",
    "bird_image.jpg",
    "synth_gradient_640x480.png",
    "synth_portrait_100x300.jpg",
    "synth_gray_L_256x200.png",
    "synth_rgba_300x200.png",
    "synth_depth_I16_320x240.png",
]


@pytest.mark.parametrize("name", IMAGE_FILES)
def test_matches_reference_output_and_intermediates(name, preprocess_fixture, preprocess_inputs):
    transform = ImageTransform()
    path = preprocess_inputs / name
    out = transform(path)
    expected = preprocess_fixture["vision"][name]
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    assert (out - expected).abs().max().item() <= 1e-5

    debug = preprocess_fixture["vision_debug"][name]
    image = open_image(path)
    assert image.mode == debug["orig_mode"] and image.size == tuple(debug["orig_size_WxH"])
    resized = transform.resized_size(*image.size)
    assert resized == tuple(debug["resized_size_WxH"])
    assert transform.crop_offsets(*resized) == tuple(debug["crop_top_left_yx"])
    crop = transform.resize_crop(transform.to_rgb(image))
    assert np.array_equal(crop, debug["rgb_uint8_after_resize_crop_HxWxC"].numpy())


def test_batch_equals_single_items(preprocess_fixture, preprocess_inputs):
    batch = load_images([preprocess_inputs / name for name in IMAGE_FILES])
    expected = torch.stack([preprocess_fixture["vision"][name] for name in IMAGE_FILES])
    assert batch.shape == (8, 3, 224, 224)
    assert (batch - expected).abs().max().item() <= 1e-5


def test_crop_offsets_round_half_to_even():
    transform = ImageTransform()
    # (225 - 224) / 2 = 0.5 rounds to 0 and (227 - 224) / 2 = 1.5 rounds to 2, as torchvision does.
    assert transform.crop_offsets(225, 224) == (0, 0)
    assert transform.crop_offsets(227, 224) == (0, 2)
    assert transform.resized_size(640, 427) == (335, 224)


# --- options ---------------------------------------------------------------------------------------------


def _rgba_224() -> Image.Image:
    rgba = np.zeros((224, 224, 4), dtype=np.uint8)
    rgba[..., 0] = 250  # stored colour: red everywhere
    rgba[:, :112, 3] = 0  # left half fully transparent
    rgba[:, 112:168, 3] = 128  # half transparent
    rgba[:, 168:, 3] = 255  # opaque
    return Image.fromarray(rgba)


def test_alpha_is_dropped_by_default_and_composited_with_background():
    image = _rgba_224()  # 224x224: no resize, so the crop is the converted image itself
    dropped = ImageTransform().resize_crop(ImageTransform().to_rgb(image))
    assert dropped[0, 0].tolist() == [250, 0, 0]  # the reference keeps the hidden colour

    white = ImageTransform(background=(255, 255, 255))
    composited = white.resize_crop(white.to_rgb(image))
    assert composited[0, 0].tolist() == [255, 255, 255]
    assert composited[0, 200].tolist() == [250, 0, 0]
    blended = composited[0, 140].astype(int)
    assert abs(blended[0] - 252) <= 1 and abs(blended[1] - 127) <= 1 and abs(blended[2] - 127) <= 1

    out = white(image)
    expected = white.normalize(composited)
    assert torch.equal(out, expected)
    assert not torch.equal(out, ImageTransform()(image))


def test_background_leaves_opaque_images_alone():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (230, 300, 3), dtype=np.uint8))
    assert torch.equal(ImageTransform(background=(0, 0, 0))(image), ImageTransform()(image))


def test_16bit_clamped_by_default_and_scaled_on_request(tmp_path):
    values = np.full((224, 224), 1200, dtype=np.uint16)
    values[:, :100] = 200
    values[:, 200:] = 65535
    path = tmp_path / "depth16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"

    clamp = ImageTransform()
    clamped = clamp.resize_crop(clamp.to_rgb(open_image(path)))
    assert clamped[0, 0].tolist() == [200] * 3 and clamped[0, 150].tolist() == [255] * 3

    scale = ImageTransform(scale_16bit=True)
    scaled = scale.resize_crop(scale.to_rgb(open_image(path)))
    assert scaled[0, 0].tolist() == [1] * 3  # round(200 / 257)
    assert scaled[0, 150].tolist() == [5] * 3  # round(1200 / 257)
    assert scaled[0, 210].tolist() == [255] * 3

    # The same values as an array give the same result, for both settings.
    assert torch.equal(clamp(values), clamp(path))
    assert torch.equal(scale(values), scale(path))
    rgb16 = np.repeat(values[:, :, None], 3, axis=2)
    assert torch.equal(scale(rgb16), scale(path))
    assert torch.equal(clamp(rgb16), clamp(path))


# --- input kinds -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jpeg_file(tmp_path_factory) -> Path:
    y, x = np.mgrid[0:180, 0:260]
    array = np.stack([x % 256, y * 255 // 180, (x + y) % 256], axis=-1).astype(np.uint8)
    path = tmp_path_factory.mktemp("img") / "sample.jpg"
    Image.fromarray(array).save(path, quality=92)
    return path


def test_all_input_kinds_give_the_same_output(jpeg_file):
    transform = ImageTransform()
    expected = transform(str(jpeg_file))
    pil = Image.open(jpeg_file)
    pil.load()
    array = np.array(pil)
    data = jpeg_file.read_bytes()
    with open(jpeg_file, "rb") as file:
        from_file = transform(file)
    inputs = {
        "Path": jpeg_file,
        "bytes": data,
        "bytearray": bytearray(data),
        "BytesIO": io.BytesIO(data),
        "PIL": pil,
        "numpy HWC uint8": array,
        "numpy HWC float": array.astype(np.float32) / 255,
        "tensor CHW uint8": torch.from_numpy(array).permute(2, 0, 1),
        "tensor HWC uint8": torch.from_numpy(array.copy()),
        "tensor CHW float": torch.from_numpy(array).permute(2, 0, 1).double() / 255,
    }
    assert torch.equal(from_file, expected)
    for kind, item in inputs.items():
        assert torch.equal(transform(item), expected), kind


def test_gray_array_and_single_channel_tensor_match_L_image():
    gray = np.random.default_rng(1).integers(0, 256, (240, 250), dtype=np.uint8)
    expected = ImageTransform()(Image.fromarray(gray))
    assert torch.equal(ImageTransform()(gray), expected)
    assert torch.equal(ImageTransform()(gray[:, :, None]), expected)
    assert torch.equal(ImageTransform()(torch.from_numpy(gray)[None]), expected)


def test_load_images_single_item_is_a_batch_of_one(jpeg_file):
    out = load_images(jpeg_file)
    assert out.shape == (1, 3, 224, 224)
    assert torch.equal(out[0], ImageTransform()(jpeg_file))


def test_batch_skip_keeps_good_items_and_reports_bad_ones(jpeg_file, tmp_path):
    items = [jpeg_file, tmp_path / "missing.png", np.zeros((50, 60, 3), np.uint8), b"not an image"]
    result = load_images(items, on_error="skip")
    assert isinstance(result, BatchResult)
    assert result.tensor.shape == (2, 3, 224, 224)
    assert result.kept == [0, 2]
    assert [failure.index for failure in result.failed] == [1, 3]
    assert all(isinstance(failure.error, OpenBindInputError) for failure in result.failed)
    assert torch.equal(result.tensor[0], ImageTransform()(jpeg_file))
    with pytest.raises(OpenBindInputError, match="batch item 1"):
        load_images(items)


def test_worker_batches_are_written_in_place_in_shared_memory(jpeg_file, tmp_path):
    from torch.utils.data import DataLoader

    from openbind.data.items import ItemDataset, collate_items

    transform = ImageTransform()
    wide = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (100, 300, 3), dtype=np.uint8)).save(wide)
    expected = [transform(jpeg_file), transform(wide)]
    row = torch.full((3, 224, 224), float("nan"))
    assert transform(wide, out=row) is row and torch.equal(row, expected[1])
    dataset = ItemDataset("vision", [jpeg_file, wide, tmp_path / "missing.png", wide, jpeg_file], transform)
    batches = list(DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_items))
    assert [b.kept for b in batches] == [[0, 1], [3], [4]] and [len(b.failed) for b in batches] == [0, 1, 0]
    assert batches[0].tensor.shape == (2, 3, 224, 224)
    for batch in batches:
        for index, got in zip(batch.kept, batch.tensor):
            assert torch.equal(got, expected[dataset.items[index] == wide])
    with pytest.raises(ValueError, match="contiguous float32 tensor of shape"):
        transform(jpeg_file, out=torch.empty(3, 224, 225))


# --- bad inputs ------------------------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size but carries no pixel data (a decompression-bomb stand-in)."""


    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _bad_inputs(tmp_path: Path, jpeg_file: Path) -> dict[str, tuple[object, str]]:
    """kind -> (item, the reason the error must give)."""
    data = jpeg_file.read_bytes()
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    text = tmp_path / "notes.txt"
    text.write_text("hello, I am not an image\n" * 20)
    nan = np.full((20, 20, 3), 0.5, dtype=np.float32)
    nan[3, 3, 1] = np.nan
    inf = np.full((20, 20), 0.5, dtype=np.float64)
    inf[0, 0] = np.inf
    shape = "expected one image of shape"
    return {
        "missing file": (tmp_path / "nope.jpg", "file not found"),
        "directory": (tmp_path, "not a file"),
        "empty file": (empty, "empty"),
        "empty bytes": (b"", "empty"),
        "truncated jpeg": (truncated, "truncated"),
        "truncated header": (data[:300], "corrupt image header"),
        "corrupt bytes": (bytes(range(256)) * 4, "not a supported image format"),
        "unsupported format": (text, "not a supported image format"),
        "decompression bomb": (_png_header_only(20_000, 20_000), "decompression bomb"),
        "zero-size array": (np.zeros((0, 10, 3), np.uint8), "zero-size"),
        "zero-size tensor": (torch.zeros(3, 0, 5), "zero-size"),
        "NaN": (nan, "NaN"),
        "inf": (inf, "infinite"),
        "float out of range": (np.full((8, 8, 3), 1.5, np.float32), r"\[0, 1\]"),
        "4-D array": (np.zeros((2, 8, 8, 3), np.uint8), shape),
        "two channels": (np.zeros((8, 8, 2), np.uint8), shape),
        "1-D tensor": (torch.zeros(10), shape),
        "int64 array": (np.zeros((8, 8, 3), np.int64), "dtype"),
        "bool tensor": (torch.zeros(3, 8, 8, dtype=torch.bool), "dtype"),
        "text file object": (io.StringIO("abc"), "binary mode"),
        "unsupported type": (42, "unsupported image input type"),
    }


def test_each_bad_input_raises_input_error_naming_the_item(tmp_path, jpeg_file):
    for kind, (item, reason) in _bad_inputs(tmp_path, jpeg_file).items():
        with pytest.raises(OpenBindInputError, match=reason) as info:
            ImageTransform()(item)
        assert info.value.item is item, kind


def test_pixel_limit_is_configurable(jpeg_file):
    with pytest.raises(OpenBindInputError, match="over the limit of 1000"):
        ImageTransform(max_pixels=1000)(jpeg_file)
    assert ImageTransform(max_pixels=None)(jpeg_file).shape == (3, 224, 224)
    with pytest.raises(OpenBindInputError, match="pixels"):
        open_image(np.zeros((40, 40), np.uint8), max_pixels=100)


def test_decompression_bomb_is_refused_whatever_pil_global_says(monkeypatch, jpeg_file):
    bomb = _png_header_only(20_000, 20_000)
    with pytest.raises(OpenBindInputError, match="decompression bomb"):
        open_image(bomb)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # PIL's own guard off: ours still refuses
    with pytest.raises(OpenBindInputError, match="over the limit of 178956970"):
        open_image(bomb)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # PIL's guard refuses first: still our error type
    with pytest.raises(OpenBindInputError, match="decompression bomb"):
        open_image(jpeg_file)


def test_bad_options_are_value_errors_at_construction():
    """A bad option fails when the transform is built, as a ValueError naming it (not the skippable item error)."""
    for options, name in (
        ({"size": 0}, "size"),
        ({"mean": (0.5, 0.5)}, "mean"),
        ({"std": (0.2, 0.0, 0.2)}, "std"),
        ({"background": (300, 0, 0)}, "background"),
        ({"max_pixels": -1}, "max_pixels"),
    ):
        with pytest.raises(ValueError, match=name) as caught:
            ImageTransform(**options)
        assert not isinstance(caught.value, OpenBindInputError), name


def test_float_image_with_nan_is_refused():
    nan = np.full((20, 20), 0.5, dtype=np.float32)
    nan[2, 2] = np.nan
    with pytest.raises(OpenBindInputError, match="NaN"):
        ImageTransform()(Image.fromarray(nan, "F"))
