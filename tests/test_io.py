"""Tests for clickmask.io.images and clickmask.io.atomic (all inputs generated in tmp_path)."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from clickmask.errors import ClickmaskError, ImageReadError
from clickmask.io.atomic import atomic_link_or_copy, atomic_path, atomic_write_bytes, atomic_write_text
from clickmask.io.images import (
    IMAGE_EXTENSIONS,
    image_size,
    load_image,
    load_mask,
    plain_image_format,
    save_png,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)


# ----------------------------------------------------------------------------- helpers


def _pattern(height: int = 24, width: int = 32) -> np.ndarray:
    """HxWx3 uint8 with four distinct flat quadrants (survives JPEG approximately)."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[: height // 2, : width // 2] = (250, 10, 10)
    image[: height // 2, width // 2 :] = (10, 250, 10)
    image[height // 2 :, : width // 2] = (10, 10, 250)
    image[height // 2 :, width // 2 :] = (240, 240, 20)
    return image


def _exif_with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _corner_image(width: int = 40, height: int = 20) -> Image.Image:
    """White image with a red block in the stored top-left corner."""
    image = np.full((height, width, 3), 255, dtype=np.uint8)
    image[:6, :6] = RED
    return Image.fromarray(image)


def _assert_one_line_naming(error: pytest.ExceptionInfo[ImageReadError], path: Path) -> str:
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def _mode(path: Path) -> str:
    with Image.open(path) as img:
        return img.mode


def _temp_leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


# ----------------------------------------------------------------------------- load_image: formats


def test_rgb_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    expected = _pattern()
    Image.fromarray(expected).save(path, quality=95)
    image = load_image(path)
    assert image.shape == (24, 32, 3) and image.dtype == np.uint8
    # compare quadrant centres (JPEG is lossy, flat blocks decode almost exactly)
    for y, x in [(6, 8), (6, 24), (18, 8), (18, 24)]:
        assert np.abs(image[y, x].astype(int) - expected[y, x].astype(int)).max() <= 8


@pytest.mark.parametrize(
    ("name", "options"),
    [("a.png", {}), ("a.bmp", {}), ("a.tif", {}), ("a.webp", {"lossless": True})],
)
def test_lossless_rgb_formats_roundtrip_exactly(
    tmp_path: Path, name: str, options: dict[str, object]
) -> None:
    path = tmp_path / name
    expected = _pattern()
    Image.fromarray(expected).save(path, **options)
    image = load_image(path)
    np.testing.assert_array_equal(image, expected)
    assert image.flags.writeable and image.flags.c_contiguous


def test_accepts_str_path(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.fromarray(_pattern()).save(path)
    assert load_image(str(path)).shape == (24, 32, 3)


def test_grayscale_png_is_replicated(tmp_path: Path) -> None:
    path = tmp_path / "gray.png"
    gray = np.arange(12 * 20, dtype=np.uint8).reshape(12, 20)
    Image.fromarray(gray).save(path)
    image = load_image(path)
    assert image.shape == (12, 20, 3) and image.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(image[:, :, channel], gray)


def test_one_bit_image(tmp_path: Path) -> None:
    path = tmp_path / "bits.png"
    bits = np.zeros((8, 8), dtype=bool)
    bits[:, 4:] = True
    Image.fromarray(bits).save(path)
    image = load_image(path)
    assert image[0, 0].tolist() == [0, 0, 0] and image[0, 7].tolist() == [255, 255, 255]


def test_16bit_grayscale_png_full_range_stretch(tmp_path: Path) -> None:
    path = tmp_path / "depth.png"
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    Image.fromarray(ramp).save(path)
    assert _mode(path).startswith("I")
    image = load_image(path)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert image[0, 0, 0] == 0 and image[-1, -1, 0] == 255
    flat = image[:, :, 0].ravel().astype(int)
    assert np.all(np.diff(flat) >= 0)  # monotonic
    assert np.array_equal(image[:, :, 0], image[:, :, 2])


def test_16bit_stretch_ignores_a_hot_pixel(tmp_path: Path) -> None:
    path = tmp_path / "hot.png"
    ramp = np.linspace(1000, 2000, 100 * 100).round().astype(np.uint16).reshape(100, 100)
    ramp[50, 50] = 65535
    Image.fromarray(ramp).save(path)
    image = load_image(path)[:, :, 0]
    assert image[50, 50] == 255
    assert image[0, 0] == 0 and image[-1, -1] == 255  # the ramp uses the full range


def test_16bit_small_bright_object_on_flat_background(tmp_path: Path) -> None:
    path = tmp_path / "sparse.png"
    data = np.full((100, 100), 300, dtype=np.uint16)
    data[10, :10] = 5000  # 0.1% of pixels: percentiles coincide, min..max is used
    Image.fromarray(data).save(path)
    image = load_image(path)[:, :, 0]
    assert image[10, :10].tolist() == [255] * 10
    assert image[50, 50] == 0


def test_constant_16bit_image_gives_zeros(tmp_path: Path) -> None:
    path = tmp_path / "flat.png"
    Image.fromarray(np.full((10, 12), 1234, dtype=np.uint16)).save(path)
    image = load_image(path)
    assert image.shape == (10, 12, 3)
    assert not image.any()


def test_16bit_big_endian_tiff(tmp_path: Path) -> None:
    path = tmp_path / "big.tif"
    data = np.linspace(0, 40000, 16 * 16).astype(">u2").reshape(16, 16)
    Image.fromarray(data).save(path)
    assert _mode(path) == "I;16B"
    image = load_image(path)
    assert image[0, 0, 0] == 0 and image[-1, -1, 0] == 255


def test_32bit_integer_and_float_tiffs(tmp_path: Path) -> None:
    ints = np.arange(20 * 20, dtype=np.int32).reshape(20, 20) * 100_000 - 5_000_000
    Image.fromarray(ints).save(tmp_path / "i.tif")
    floats = np.linspace(-1.0, 3.0, 20 * 20, dtype=np.float32).reshape(20, 20)
    floats[0, 1] = np.nan
    floats[0, 2] = np.inf
    Image.fromarray(floats).save(tmp_path / "f.tif")
    for name, mode in [("i.tif", "I"), ("f.tif", "F")]:
        assert _mode(tmp_path / name) == mode
        image = load_image(tmp_path / name)
        assert image.shape == (20, 20, 3)
        assert image[-1, -1, 0] == 255 and image[0, 0, 0] == 0
    image = load_image(tmp_path / "f.tif")
    assert image[0, 1, 0] == 0 and image[0, 2, 0] == 0  # non-finite -> 0


def test_16bit_rgb_png_keeps_top_byte(tmp_path: Path) -> None:
    path = tmp_path / "rgb48.png"
    bgr = np.zeros((6, 7, 3), dtype=np.uint16)
    bgr[..., 0] = 0xFFFF  # blue
    bgr[..., 1] = 0x0100  # green
    bgr[..., 2] = 0x80FF  # red
    bgr[0, 0] = (0x00FF, 0x7FFF, 0x1234)
    assert cv2.imwrite(str(path), bgr)
    image = load_image(path)
    assert image.shape == (6, 7, 3) and image.dtype == np.uint8
    assert image[1, 1].tolist() == [0x80, 0x01, 0xFF]
    assert image[0, 0].tolist() == [0x12, 0x7F, 0x00]


def test_16bit_rgba_png_composited(tmp_path: Path) -> None:
    path = tmp_path / "rgba64.png"
    bgra = np.full((4, 5, 4), 0xFFFF, dtype=np.uint16)
    bgra[0, 0, 3] = 0
    assert cv2.imwrite(str(path), bgra)
    image = load_image(path)
    assert image[0, 0].tolist() == [0, 0, 0] and image[1, 1].tolist() == [255, 255, 255]


def test_opencv_fallback_for_format_pillow_cannot_identify(tmp_path: Path) -> None:
    path = tmp_path / "radiance.hdr"
    rng = np.random.default_rng(0)
    bgr = rng.random((9, 11, 3)).astype(np.float32)
    assert cv2.imwrite(str(path), bgr)
    with pytest.raises(UnidentifiedImageError):
        Image.open(path).close()
    image = load_image(path)
    assert image.shape == (9, 11, 3) and image.dtype == np.uint8
    assert image.max() == 255 and image.min() == 0
    assert image_size(path) == (11, 9)
    # channel order: the brightest red pixel in the file is the brightest R in the result
    red = bgr[:, :, 2]
    assert image[np.unravel_index(np.argmax(red), red.shape)][0] == 255


def test_rgba_png_is_composited_on_black(tmp_path: Path) -> None:
    path = tmp_path / "rgba.png"
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[0, :, 3] = 255
    rgba[1, :, 3] = 0
    rgba[2, :, 3] = 128
    Image.fromarray(rgba).save(path)
    image = load_image(path)
    assert image.shape == (4, 4, 3)
    assert image[0, 0].tolist() == [200, 100, 50]
    assert image[1, 0].tolist() == [0, 0, 0]
    assert image[2, 0].tolist() == [100, 50, 25]


def test_la_png(tmp_path: Path) -> None:
    path = tmp_path / "la.png"
    la = np.zeros((3, 3, 2), dtype=np.uint8)
    la[..., 0] = 180
    la[0, :, 1] = 255
    Image.frombytes("LA", (3, 3), la.tobytes()).save(path)
    image = load_image(path)
    assert image[0, 0].tolist() == [180, 180, 180] and image[1, 0].tolist() == [0, 0, 0]


def test_palette_png(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    indices = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    img = Image.frombytes("P", (2, 2), indices.tobytes())
    img.putpalette([10, 20, 30, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    img.save(path)
    assert _mode(path) == "P"
    image = load_image(path)
    assert image[0, 0].tolist() == [10, 20, 30]
    assert image[0, 1].tolist() == [255, 0, 0]
    assert image[1, 0].tolist() == [0, 0, 255]


def test_palette_png_with_transparency(tmp_path: Path) -> None:
    path = tmp_path / "palette_t.png"
    img = Image.frombytes("P", (2, 1), bytes([0, 1]))
    img.putpalette([255, 255, 255, 0, 255, 0] + [0] * (256 * 3 - 6))
    img.save(path, transparency=0)
    image = load_image(path)
    assert image[0, 0].tolist() == [0, 0, 0]  # transparent white -> black
    assert image[0, 1].tolist() == [0, 255, 0]


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 6), (0, 0, 0, 0)).save(path, quality=95)
    image = load_image(path)
    assert image.shape == (6, 8, 3)
    assert image.min() >= 250  # no ink = white


def test_multiframe_gif_gives_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    first = Image.new("RGB", (5, 4), RED)
    second = Image.new("RGB", (5, 4), BLUE)
    first.save(path, save_all=True, append_images=[second], duration=100)
    with Image.open(path) as img:
        assert img.n_frames == 2
    image = load_image(path)
    assert image.shape == (4, 5, 3)
    assert image[0, 0].tolist() == list(RED)


def test_multipage_tiff_gives_first_page(tmp_path: Path) -> None:
    path = tmp_path / "pages.tif"
    second_page = Image.new("RGB", (3, 3), RED)
    Image.new("RGB", (5, 4), BLUE).save(path, save_all=True, append_images=[second_page])
    image = load_image(path)
    assert image.shape == (4, 5, 3) and image[0, 0].tolist() == list(BLUE)


# ----------------------------------------------------------------------------- EXIF orientation


def test_exif_orientation_6_jpeg_is_rotated_clockwise(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    _corner_image(40, 20).save(path, exif=_exif_with_orientation(6), quality=95)
    image = load_image(path)
    # stored 40 wide x 20 high; displayed rotated 90 degrees clockwise: 20 wide x 40 high
    assert image.shape == (40, 20, 3)
    # the stored top-left corner ends up at the displayed top-right corner
    assert np.abs(image[2, -3].astype(int) - np.array(RED)).max() <= 40
    assert image[2, 2].min() >= 215 and image[-3, -3].min() >= 215 and image[-3, 2].min() >= 215
    assert image_size(path) == (20, 40)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_orientations_match_pillow_exif_transpose(tmp_path: Path, orientation: int) -> None:
    path = tmp_path / f"o{orientation}.png"
    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 256, (5, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, exif=_exif_with_orientation(orientation))
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    image = load_image(path)
    np.testing.assert_array_equal(image, expected)
    assert image_size(path) == (image.shape[1], image.shape[0])


def test_image_size_does_not_decode_pixels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jpg, png = tmp_path / "a.jpg", tmp_path / "a.png"
    _corner_image(40, 20).save(jpg, exif=_exif_with_orientation(8))
    _corner_image(40, 20).save(png, exif=_exif_with_orientation(6))
    plain = tmp_path / "plain.png"
    _corner_image(40, 20).save(plain)

    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    assert image_size(jpg) == (20, 40)
    assert image_size(png) == (20, 40)
    assert image_size(plain) == (40, 20)


def test_png_exif_after_pixel_data_is_honoured(tmp_path: Path) -> None:
    """An eXIf chunk after IDAT (allowed by the PNG spec) still rotates image_size."""
    source = io.BytesIO()
    _corner_image(40, 20).save(source, format="PNG", exif=_exif_with_orientation(6))
    data = source.getvalue()
    # move the eXIf chunk to just before IEND
    start = data.index(b"eXIf") - 4
    (length,) = struct.unpack(">I", data[start : start + 4])
    chunk = data[start : start + 12 + length]
    data = data[:start] + data[start + 12 + length :]
    iend = data.index(b"IEND") - 4
    data = data[:iend] + chunk + data[iend:]
    assert zlib.crc32(chunk[4:-4]) == struct.unpack(">I", chunk[-4:])[0]
    path = tmp_path / "late.png"
    path.write_bytes(data)
    assert data.index(b"eXIf") > data.index(b"IDAT")
    assert load_image(path).shape == (40, 20, 3)
    assert image_size(path) == (20, 40)


def test_corrupt_exif_does_not_make_image_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "badexif.jpg"
    Image.new("RGB", (6, 4), RED).save(path, exif=b"Exif\x00\x00garbage-not-tiff")
    assert load_image(path).shape == (4, 6, 3)
    assert image_size(path) == (6, 4)


# ----------------------------------------------------------------------------- errors


def test_truncated_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    buffer = io.BytesIO()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(buffer, "JPEG")
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as error:
        load_image(path)
    message = _assert_one_line_naming(error, path)
    assert "truncated" in message
    assert message.startswith("cannot read image ")
    assert not ImageFile.LOAD_TRUNCATED_IMAGES


def test_truncated_png(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    buffer = io.BytesIO()
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(buffer, "PNG")
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as error:
        load_image(path)
    assert "truncated" in _assert_one_line_naming(error, path)
    with pytest.raises(ImageReadError):
        load_mask(path)


def test_non_image_bytes(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_bytes(b"this is not an image\n" * 20)
    with pytest.raises(ImageReadError) as error:
        load_image(path)
    assert "not a supported image format" in _assert_one_line_naming(error, path)
    with pytest.raises(ImageReadError):
        image_size(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jpg"
    with pytest.raises(ImageReadError) as error:
        load_image(path)
    assert "not found" in _assert_one_line_naming(error, path)
    with pytest.raises(ImageReadError) as mask_error:
        load_mask(path)
    assert str(mask_error.value).startswith("cannot read mask ")
    with pytest.raises(ImageReadError):
        image_size(path)


def test_directory(tmp_path: Path) -> None:
    path = tmp_path / "folder.png"
    path.mkdir()
    with pytest.raises(ImageReadError) as error:
        load_image(path)
    assert "directory" in _assert_one_line_naming(error, path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError) as error:
        load_image(path)
    assert "empty" in _assert_one_line_naming(error, path)


def test_zero_size_header(tmp_path: Path) -> None:
    path = tmp_path / "zero.pgm"
    path.write_bytes(b"P5\n0 4\n255\n")
    with pytest.raises(ImageReadError) as error:
        load_image(path)
    _assert_one_line_naming(error, path)


def test_zero_size_image_from_decoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "zero.png"
    path.write_bytes(b"placeholder")
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: Image.new("RGB", (0, 5)))
    with pytest.raises(ImageReadError) as error:
        load_image(path)
    assert "no pixels" in _assert_one_line_naming(error, path)
    with pytest.raises(ImageReadError):
        image_size(path)


def test_decompression_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.png"
    Image.new("L", (40, 40)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 px > 2x limit
    with pytest.raises(ImageReadError) as error:
        load_image(path)
    assert "too large" in _assert_one_line_naming(error, path)
    # its size still comes from the header: an image this large is shown as tiles, read window by window
    assert image_size(path) == (40, 40)


def test_opencv_fallback_refuses_bombs_from_the_header(tmp_path: Path) -> None:
    """A 3 KB Radiance header claiming 15000 x 15000 pixels, named .png: refused before decoding."""
    path = tmp_path / "hdr.png"
    path.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 15000 +X 15000\n" + bytes(3000))
    for read in (load_image, image_size):
        with pytest.raises(ImageReadError) as error:
            read(path)
        assert "too large" in _assert_one_line_naming(error, path)
    # every other format OpenCV decodes gets the same pixel limit (it reads it on its first decode)
    code = ("import os, clickmask.io.images as m; "
            "print(os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'] == str(m.MAX_IMAGE_PIXELS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"})
    assert out.stdout.strip() == "True", out.stderr


def test_errors_are_clickmask_errors() -> None:
    assert issubclass(ImageReadError, ClickmaskError)


# ------------------------------------------------------------------------- image_size, extensions


def test_image_size_plain(tmp_path: Path) -> None:
    path = tmp_path / "a.webp"
    Image.new("RGB", (33, 17)).save(path)
    assert image_size(path) == (33, 17)


def test_image_extensions() -> None:
    assert {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"} <= IMAGE_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in IMAGE_EXTENSIONS)
    assert isinstance(IMAGE_EXTENSIONS, frozenset)


# ----------------------------------------------------------------------------- load_mask


def test_mask_8bit_threshold(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    Image.fromarray(np.array([[0, 127, 128, 255]], dtype=np.uint8)).save(path)
    mask = load_mask(path)
    assert mask.dtype == np.bool_ and mask.shape == (1, 4)
    assert mask.tolist() == [[False, False, True, True]]


def test_mask_rgb_any_channel(tmp_path: Path) -> None:
    path = tmp_path / "m_rgb.png"
    rgb = np.array([[[0, 0, 0], [0, 0, 128], [127, 127, 127], [200, 0, 0]]], dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    assert load_mask(path).tolist() == [[False, True, False, True]]


def test_mask_16bit_half_range(tmp_path: Path) -> None:
    path = tmp_path / "m16.png"
    Image.fromarray(np.array([[0, 32767, 32768, 65535]], dtype=np.uint16)).save(path)
    assert load_mask(path).tolist() == [[False, False, True, True]]


def test_mask_rgba_transparent_is_background(tmp_path: Path) -> None:
    path = tmp_path / "m_rgba.png"
    rgba = np.array([[[255, 255, 255, 0], [255, 255, 255, 255], [0, 0, 0, 255]]], dtype=np.uint8)
    Image.fromarray(rgba).save(path)
    assert load_mask(path).tolist() == [[False, True, False]]


def test_mask_one_bit_and_jpeg(tmp_path: Path) -> None:
    bits = np.zeros((8, 8), dtype=bool)
    bits[2:6, 2:6] = True
    Image.fromarray(bits).save(tmp_path / "b.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "b.png"), bits)
    Image.fromarray(bits.astype(np.uint8) * 255).save(tmp_path / "b.jpg", quality=95)
    assert load_mask(tmp_path / "b.jpg")[4, 4] and not load_mask(tmp_path / "b.jpg")[0, 0]


def test_mask_follows_exif_orientation(tmp_path: Path) -> None:
    path = tmp_path / "m_rot.png"
    mask = np.zeros((2, 3), dtype=np.uint8)
    mask[0, 0] = 255
    Image.fromarray(mask).save(path, exif=_exif_with_orientation(6))
    loaded = load_mask(path)
    assert loaded.shape == (3, 2)
    assert loaded.tolist() == [[False, True], [False, False], [False, False]]


# ----------------------------------------------------------------------------- save_png


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.uint8).reshape(3, 4),
        np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000,
        np.arange(36, dtype=np.uint8).reshape(3, 4, 3),
        np.arange(48, dtype=np.uint8).reshape(3, 4, 4),
    ],
)
def test_save_png_roundtrip(tmp_path: Path, array: np.ndarray) -> None:
    path = tmp_path / "out" / "nested" / "x.png"
    save_png(path, array)
    with Image.open(path) as img:
        assert img.format == "PNG"
        np.testing.assert_array_equal(np.asarray(img), array)
    assert _temp_leftovers(path.parent) == []


def test_save_png_bool_mask_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    mask = np.zeros((5, 6), dtype=bool)
    mask[1:3, 2:5] = True
    save_png(path, mask)
    with Image.open(path) as img:
        assert img.mode == "L"
        assert set(np.unique(np.asarray(img)).tolist()) == {0, 255}
    np.testing.assert_array_equal(load_mask(path), mask)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((3, 4), dtype=np.float32),
        np.zeros((3, 4, 2), dtype=np.uint8),
        np.zeros((0, 4), dtype=np.uint8),
    ],
)
def test_save_png_rejects_bad_arrays(tmp_path: Path, array: np.ndarray) -> None:
    with pytest.raises(ValueError):
        save_png(tmp_path / "bad.png", array)
    assert list(tmp_path.iterdir()) == []


def test_save_png_unwritable_target_is_clickmask_error(tmp_path: Path) -> None:
    target = tmp_path / "is_a_dir.png"
    target.mkdir()
    with pytest.raises(ClickmaskError) as error:
        save_png(target, np.zeros((2, 2), dtype=np.uint8))
    assert str(target) in str(error.value)
    assert _temp_leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_bytes_and_text(tmp_path: Path) -> None:
    binary = tmp_path / "deep" / "er" / "blob.bin"
    atomic_write_bytes(binary, b"\x00\x01payload")
    assert binary.read_bytes() == b"\x00\x01payload"
    text = tmp_path / "notes.txt"
    atomic_write_text(text, "héllo\nwörld\n")
    assert text.read_bytes() == "héllo\nwörld\n".encode("utf-8")
    atomic_write_text(text, "replaced")
    assert text.read_text(encoding="utf-8") == "replaced"
    assert _temp_leftovers(tmp_path) == [] and _temp_leftovers(binary.parent) == []


def test_atomic_path_temp_name_and_location(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    with atomic_path(target) as temp:
        assert temp.parent == target.parent
        assert temp.name.startswith(".result.json.tmp-")
        assert temp.exists() and not target.exists()
        temp.write_text("{}", encoding="utf-8")
    assert target.read_text(encoding="utf-8") == "{}"
    assert not temp.exists()
    assert _temp_leftovers(tmp_path) == []


def test_atomic_path_exception_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as temp:
            temp.write_text("new but incomplete", encoding="utf-8")
            raise RuntimeError("boom")
    assert target.read_text(encoding="utf-8") == "old"
    assert _temp_leftovers(tmp_path) == []


def test_atomic_path_exception_without_old_file_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "new.txt"
    with pytest.raises(KeyError):
        with atomic_path(target) as temp:
            temp.write_bytes(b"partial")
            raise KeyError("x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_atomic_file_permissions_follow_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "perm.bin", b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "perm.bin").stat().st_mode & 0o777 == 0o644


# ----------------------------------------------------------------------------- sharing files into datasets


def test_link_or_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "a.jpg"
    src.write_bytes(b"pixels")
    assert atomic_link_or_copy(src, tmp_path / "out" / "a.jpg") is True  # a hard link on one filesystem
    assert (tmp_path / "out" / "a.jpg").samefile(src)
    assert atomic_link_or_copy(src, tmp_path / "out" / "a.jpg") is True  # already there: unchanged
    assert atomic_link_or_copy(src, src) is True

    def no_links(*_args, **_kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    (tmp_path / "out" / "b.jpg").write_bytes(b"old")
    assert atomic_link_or_copy(src, tmp_path / "out" / "b.jpg") is False  # copied instead
    assert (tmp_path / "out" / "b.jpg").read_bytes() == b"pixels" and not (tmp_path / "out" / "b.jpg").samefile(src)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "b.jpg"]  # no temporary files left
    with pytest.raises(OSError):
        atomic_link_or_copy(tmp_path / "missing.jpg", tmp_path / "out" / "c.jpg")
    assert not (tmp_path / "out" / "c.jpg").exists()


def test_plain_image_format(tmp_path: Path) -> None:
    Image.new("RGB", (8, 6)).save(tmp_path / "a.jpg")
    Image.new("L", (8, 6)).save(tmp_path / "g.png")
    Image.new("RGBA", (8, 6)).save(tmp_path / "alpha.png")
    Image.new("RGB", (8, 6)).save(tmp_path / "rotated.jpg", exif=_exif_with_orientation(6))
    Image.fromarray(np.zeros((6, 8), np.uint16)).save(tmp_path / "deep.png")
    assert plain_image_format(tmp_path / "a.jpg") == "JPEG"
    assert plain_image_format(tmp_path / "g.png") == "PNG"
    for name in ("alpha.png", "rotated.jpg", "deep.png"):
        assert plain_image_format(tmp_path / name) is None, name
    with pytest.raises(ImageReadError, match="missing.png"):
        plain_image_format(tmp_path / "missing.png")
