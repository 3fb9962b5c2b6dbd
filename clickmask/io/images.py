"""Read images and binary masks as numpy arrays, and write PNGs atomically.

Conventions for every image a user may have:

* The result of :func:`load_image` is always ``HxWx3 uint8`` RGB, upright as an
  image viewer shows it (the EXIF Orientation tag is applied).
* 8-bit grayscale is replicated to three channels.
* High-bit-depth grayscale (16-bit, 32-bit integer, float) is mapped to 8 bits
  with a robust linear stretch: the 0.5th..99.5th percentiles of the finite
  pixel values map to 0..255 (values outside are clipped). If those percentiles
  coincide (e.g. a small bright object on a flat background) the min..max range
  is used instead; a constant image becomes all zeros; NaN/inf become 0.
* 16-bit colour keeps the top 8 bits of each channel (``value >> 8``).
* Transparency (RGBA, LA, PA, palette or colour-key transparency) is composited
  over black: ``rgb * alpha / 255``.
* Palette, 1-bit, CMYK, YCbCr and other colour modes are converted to RGB by
  Pillow (embedded ICC profiles are not applied).
* Multi-frame files (GIF, APNG, multi-page TIFF, MPO) give their first frame.
* Georeferenced TIFFs (GeoTIFF, COG: a ``.tif``/``.tiff`` file with a CRS) are
  read with rasterio through :mod:`clickmask.io.rasters`: any band count and
  data type, bands 1-3 as RGB (or band 1 as gray), a per-band contrast stretch
  that ignores nodata (uint8 data as it is). Masks are always read as below.
* Single DICOM files (``.dcm``, :data:`DICOM_EXTENSIONS`) are read in their
  modality units (Hounsfield units for CT) through :mod:`clickmask.io.display`
  and shown through their default window (CT: abdomen; else percentiles).
  Other bands, stretches or windows: :func:`clickmask.io.display.render`.
* Files Pillow cannot identify are tried with OpenCV (``IMREAD_UNCHANGED``), e.g.
  Radiance HDR; EXIF orientation is not applied on that path. Both decoders
  refuse images of more than :data:`MAX_IMAGE_PIXELS` pixels.

Every failure raises :class:`~clickmask.errors.ImageReadError` with one line
naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

#: The most pixels any decoder may produce: Pillow's decompression-bomb limit, which OpenCV
#: (the fallback decoder) is given too; it reads the variable on its first decode.
MAX_IMAGE_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))
import cv2  # noqa: E402 - after the limit is set

from clickmask.errors import ClickmaskError, ImageReadError
from clickmask.io.atomic import atomic_path

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
)
"""Lowercase file suffixes (with the dot) that are treated as images."""

DICOM_EXTENSIONS: frozenset[str] = frozenset({".dcm"})
"""Single DICOM image files: a project shows them as images (``clickmask.io.display``), windowed."""

_STRETCH_PERCENTILES = (0.5, 99.5)
_ORIENTATION_TAG = 0x0112
_TRANSPOSE_FOR_ORIENTATION: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_METADATA_CHUNKS = frozenset({b"eXIf", b"tEXt", b"zTXt", b"iTXt"})

PathLike = str | os.PathLike[str]


# ----------------------------------------------------------------------------- errors


def _read_error(kind: str, path: Path, problem: str) -> ImageReadError:
    """Build ``cannot read <kind> '<path>': <problem>``."""
    return ImageReadError(f"cannot read {kind} '{path}': {problem}")


def _describe(exc: BaseException) -> str:
    """A short, one-line description of a decoding failure."""
    text = " ".join(str(exc).split())
    lowered = text.lower()
    if isinstance(exc, EOFError) or "truncated" in lowered:
        return "file is truncated"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, OSError) and exc.strerror and not text.startswith(exc.strerror):
        return exc.strerror.lower()
    return f"corrupt or unsupported image data ({text or type(exc).__name__})"


@contextlib.contextmanager
def _reading(kind: str, path: Path) -> Iterator[None]:
    """Turn any failure inside the block into a one-line ImageReadError."""
    try:
        yield
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        problem = f"image is too large to decode safely ({' '.join(str(exc).split())})"
        raise _read_error(kind, path, problem) from exc
    except MemoryError as exc:
        raise _read_error(kind, path, "not enough memory to decode it") from exc
    except Exception as exc:  # decoders raise many types (OSError, ValueError, SyntaxError, ...)
        raise _read_error(kind, path, _describe(exc)) from exc


def _check_file(kind: str, path: PathLike) -> Path:
    """Return ``path`` as a Path if it is a readable, non-empty regular file."""
    file = Path(path)
    try:
        info = file.stat()
    except FileNotFoundError:
        raise _read_error(kind, file, "file not found") from None
    except PermissionError:
        raise _read_error(kind, file, "permission denied") from None
    except OSError as exc:
        raise _read_error(kind, file, _describe(exc)) from None
    if file.is_dir():
        raise _read_error(kind, file, "is a directory, not a file")
    if not file.is_file():
        raise _read_error(kind, file, "not a regular file")
    if info.st_size == 0:
        raise _read_error(kind, file, "file is empty")
    return file


def _check_size(kind: str, path: Path, width: int, height: int) -> None:
    """Reject images with no pixels."""
    if width <= 0 or height <= 0:
        raise _read_error(kind, path, f"image has no pixels ({width}x{height})")


# ----------------------------------------------------------------------------- orientation


def _png_metadata_after_pixels(path: Path) -> bool:
    """True if a PNG may keep EXIF/text chunks after its pixel data (or cannot be walked).

    Pillow only sees such chunks after decoding the pixels.
    """
    with open(path, "rb") as handle:
        if handle.read(8) != _PNG_SIGNATURE:
            return True
        seen_pixels = False
        while True:
            header = handle.read(8)
            if len(header) < 8:
                return True
            length, chunk_type = struct.unpack(">I4s", header)
            if chunk_type == b"IEND":
                return False
            if chunk_type == b"IDAT":
                seen_pixels = True
            elif seen_pixels and chunk_type in _PNG_METADATA_CHUNKS:
                return True
            handle.seek(length + 4, os.SEEK_CUR)  # chunk data + CRC


def _orientation(img: Image.Image, path: Path, pixels_loaded: bool) -> int:
    """EXIF orientation 1..8 of an open image; 1 if absent or unreadable."""
    try:
        if (
            not pixels_loaded
            and img.format == "PNG"
            and "exif" not in img.info
            and not _png_metadata_after_pixels(path)
        ):
            # PngImageFile.getexif() decodes the pixels to find late chunks; there are none.
            exif = Image.Image.getexif(img)
        else:
            exif = img.getexif()
        value = int(exif.get(_ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block must not make the image unreadable
        return 1
    return value if value in _TRANSPOSE_FOR_ORIENTATION else 1


# ----------------------------------------------------------------------------- conversions


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """HxW uint8 -> HxWx3 uint8 (channel replicated)."""
    return np.repeat(gray[:, :, np.newaxis], 3, axis=2)


def _composite_on_black(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 colour, HxW uint8 alpha -> HxWx3 uint8 ``rgb * alpha / 255`` (rounded)."""
    weighted = rgb.astype(np.uint16) * alpha.astype(np.uint16)[:, :, np.newaxis]
    return ((weighted + np.uint16(127)) // np.uint16(255)).astype(np.uint8)


def _stretch_to_uint8(values: np.ndarray) -> np.ndarray:
    """Numeric array (HxW or HxWxC) -> same-shape uint8 with a robust linear stretch.

    Percentiles 0.5..99.5 of the finite values map to 0..255 (clipped); if they
    coincide, min..max is used; constant or all non-finite input gives zeros.
    """
    data = np.asarray(values)
    finite: np.ndarray | None = None
    sample = data
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            sample = data[finite]
        else:
            finite = None
    out = np.zeros(data.shape, dtype=np.uint8)
    if sample.size == 0:
        return out
    low, high = (float(v) for v in np.percentile(sample, _STRETCH_PERCENTILES))
    if not high > low:
        low, high = float(sample.min()), float(sample.max())
        if not high > low:
            return out
    work_dtype = np.float64 if data.dtype == np.float64 else np.float32
    scaled = (data.astype(work_dtype) - low) * (255.0 / (high - low))
    np.clip(scaled, 0.0, 255.0, out=scaled)
    if finite is not None:
        scaled[~finite] = 0.0
    np.rint(scaled, out=scaled)
    out[...] = scaled.astype(np.uint8)
    return out


def _is_high_depth(mode: str) -> bool:
    """Pillow modes holding more than 8 bits per pixel in one channel."""
    return mode in ("I", "F") or mode.startswith("I;")


def _pil_colour_to_rgb(img: Image.Image) -> np.ndarray:
    """8-bit-per-channel Pillow image (any mode) -> HxWx3 uint8, alpha composited on black."""
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
        return _composite_on_black(rgba[:, :, :3], rgba[:, :, 3])
    if img.mode == "L":
        return _gray_to_rgb(np.asarray(img, dtype=np.uint8))
    try:
        converted = img.convert("RGB")
    except ValueError as exc:
        raise ValueError(f"unsupported colour mode '{img.mode}'") from exc
    return np.asarray(converted, dtype=np.uint8)


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Decoded Pillow image -> HxWx3 uint8 RGB."""
    if _is_high_depth(img.mode):
        return _gray_to_rgb(_stretch_to_uint8(np.asarray(img)))
    return _pil_colour_to_rgb(img)


def _pil_to_mask(img: Image.Image) -> np.ndarray:
    """Decoded Pillow image -> HxW bool (see :func:`load_mask` for the thresholds)."""
    if img.mode == "1":
        return np.asarray(img.convert("L"), dtype=np.uint8) > 127
    if img.mode == "L" and "transparency" not in img.info:
        return np.asarray(img, dtype=np.uint8) > 127
    if img.mode == "F":
        return np.asarray(img, dtype=np.float32) > 0.5
    if _is_high_depth(img.mode):
        return np.asarray(img).astype(np.int64) > 32767
    return np.any(_pil_colour_to_rgb(img) > 127, axis=2)


def _channel_to_uint8(channel: np.ndarray) -> np.ndarray:
    """Colour data from OpenCV -> uint8: uint16 keeps the top 8 bits, others are stretched."""
    if channel.dtype == np.uint8:
        return channel
    if channel.dtype == np.uint16:
        return (channel >> 8).astype(np.uint8)
    return _stretch_to_uint8(channel)


def _cv2_to_rgb(array: np.ndarray) -> np.ndarray:
    """OpenCV ``IMREAD_UNCHANGED`` result (HxW, HxWx1, BGR or BGRA) -> HxWx3 uint8 RGB.

    Alpha is composited on black when it is 8- or 16-bit, otherwise ignored.
    """
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        gray = array if array.dtype == np.uint8 else _stretch_to_uint8(array)
        return _gray_to_rgb(gray)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"unsupported pixel layout {array.shape}")
    rgb = _channel_to_uint8(np.ascontiguousarray(array[:, :, 2::-1]))
    if array.shape[2] == 4 and array.dtype in (np.uint8, np.uint16):
        return _composite_on_black(rgb, _channel_to_uint8(array[:, :, 3]))
    return rgb


def _cv2_to_mask(array: np.ndarray) -> np.ndarray:
    """OpenCV result -> HxW bool (integers > half their range, floats > 0.5, colour any > 127)."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        if array.dtype.kind == "f":
            return array > 0.5
        return array > np.iinfo(array.dtype).max // 2
    return np.any(_cv2_to_rgb(array) > 127, axis=2)


# ----------------------------------------------------------------------------- decoding


def _open_pil(path: Path) -> Image.Image | None:
    """Open (not decode) with Pillow; None if Pillow does not recognise the format."""
    try:
        return Image.open(path)
    except UnidentifiedImageError:
        return None


def _radiance_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a Radiance HDR header, None for other files."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head.startswith((b"#?RADIANCE", b"#?RGBE")) or b"\n\n" not in head:
        return None
    line = head.split(b"\n\n", 1)[1].split(b"\n", 1)[0].split()
    if len(line) != 4 or line[0][1:] not in (b"Y", b"X") or line[2][1:] not in (b"Y", b"X"):
        return None
    try:
        a, b = int(line[1]), int(line[3])
    except ValueError:
        return None
    return (b, a) if line[0][1:] == b"Y" else (a, b)


def _decode_cv2(kind: str, path: Path) -> np.ndarray:
    """Decode with OpenCV (the fallback for formats Pillow cannot identify)."""
    size = _radiance_size(path)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise _read_error(kind, path, f"image is too large to decode safely ({size[0]}x{size[1]} pixels, "
                                      f"more than {MAX_IMAGE_PIXELS:,})")
    encoded = np.fromfile(path, dtype=np.uint8)
    try:
        array = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        array = None
    if array is None:
        raise _read_error(kind, path, "not a supported image format, or the file is corrupt")
    _check_size(kind, path, int(array.shape[1]), int(array.shape[0]))
    return array


def _owned(array: np.ndarray) -> np.ndarray:
    """A C-contiguous, writeable array (arrays viewing Pillow buffers are read-only)."""
    return np.require(array, requirements=("C_CONTIGUOUS", "WRITEABLE"))


def _georeferenced(file: Path) -> bool:
    """True for a GeoTIFF that :mod:`clickmask.io.rasters` reads (cheap for every other file)."""
    if file.suffix.lower() not in (".tif", ".tiff"):
        return False
    from clickmask.io.rasters import is_georeferenced_tiff

    return is_georeferenced_tiff(file)


def _decode(
    kind: str,
    path: PathLike,
    from_pil: Callable[[Image.Image], np.ndarray],
    from_cv2: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Decode the first frame of ``path`` upright and convert it with ``from_pil``/``from_cv2``."""
    file = _check_file(kind, path)
    with _reading(kind, file):
        img = _open_pil(file)
        if img is None:
            return _owned(from_cv2(_decode_cv2(kind, file)))
        with img:
            _check_size(kind, file, img.width, img.height)
            img.load()  # decode now, so truncated or corrupt data fails here
            method = _TRANSPOSE_FOR_ORIENTATION.get(_orientation(img, file, pixels_loaded=True))
            upright = img.transpose(method) if method is not None else img
            return _owned(from_pil(upright))


# ----------------------------------------------------------------------------- public API


def load_image(path: PathLike) -> np.ndarray:
    """Read any supported image as HxWx3 uint8 RGB, upright (EXIF orientation applied).

    See the module docstring for how grayscale, high bit depth, alpha, palette,
    CMYK and multi-frame files are converted.

    Raises:
        ImageReadError: missing file, directory, empty, unrecognised, corrupt,
            truncated or oversized (decompression bomb) image.
    """
    file = _check_file("image", path)
    if _georeferenced(file):
        from clickmask.io.rasters import load_raster

        return load_raster(file)
    if file.suffix.lower() in DICOM_EXTENSIONS:
        from clickmask.io.display import render

        return render(file, None, kind="dicom")
    return _decode("image", file, _pil_to_rgb, _cv2_to_rgb)


def load_mask(path: PathLike) -> np.ndarray:
    """Read a binary mask as HxW bool, upright (EXIF orientation applied).

    A pixel is object when any colour channel is > 127 (8-bit), > 32767
    (16-bit or 32-bit integer grayscale) or > 0.5 (float). Transparency is
    composited on black first, so fully transparent pixels are background.
    Palette masks are thresholded on their palette colours, not their indices.

    Raises:
        ImageReadError: as :func:`load_image`, with ``cannot read mask`` messages.
    """
    return _decode("mask", path, _pil_to_mask, _cv2_to_mask)


def image_size(path: PathLike) -> tuple[int, int]:
    """Return ``(width, height)`` as :func:`load_image` would, without decoding pixels.

    EXIF orientations 5..8 swap width and height. Files only OpenCV can read
    are decoded to learn their size.

    Raises:
        ImageReadError: as :func:`load_image` for files whose header is unreadable.
    """
    kind = "image"
    file = _check_file(kind, path)
    if _georeferenced(file):
        from clickmask.io.rasters import read_info

        info = read_info(file)
        return info.width, info.height
    if file.suffix.lower() in DICOM_EXTENSIONS:
        from clickmask.io.display import dicom_size

        return dicom_size(file)
    with _reading(kind, file):
        try:
            img = _open_pil(file)
        except Image.DecompressionBombError:  # a very large image: shown as tiles, its header read by GDAL
            from clickmask.io.rasters import read_info

            info = read_info(file)
            return info.width, info.height
        if img is None:
            array = _decode_cv2(kind, file)  # the only way to learn the size; refuses bombs first
            return int(array.shape[1]), int(array.shape[0])
        with img:
            width, height = img.size
            _check_size(kind, file, width, height)
            orientation = _orientation(img, file, pixels_loaded=False)
    return (height, width) if orientation in _SWAPS_AXES else (width, height)


def plain_image_format(path: PathLike) -> str | None:
    """Pillow's format name (``"JPEG"``, ``"PNG"``, ...) if other readers show the file as :func:`load_image` does.

    That is a file Pillow reads with one frame, 8-bit RGB or grayscale pixels
    (mode ``RGB`` or ``L``) and no EXIF rotation: any image library decodes it to
    the pixels the annotator saw, so it can be shared (linked or copied) into a
    dataset as it is. For other files (alpha, palette, 16-bit, CMYK, a GeoTIFF that is
    stretched or has other than 1 or 3 bands or a nodata value, rotated by
    EXIF, multi-frame, or only OpenCV reads them) returns None: write the
    :func:`load_image` pixels instead.

    Raises:
        ImageReadError: as :func:`image_size`.
    """
    kind = "image"
    file = _check_file(kind, path)
    if _georeferenced(file):
        from clickmask.io.rasters import read_info

        info = read_info(file)
        if info.dtype != "uint8" or info.count not in (1, 3) or info.nodata is not None:
            return None  # stretched, band-selected or masked: other readers show other pixels
    with _reading(kind, file):
        img = _open_pil(file)
        if img is None:
            return None
        with img:
            _check_size(kind, file, img.width, img.height)
            if img.mode not in ("RGB", "L") or getattr(img, "n_frames", 1) != 1:
                return None
            if _orientation(img, file, pixels_loaded=False) != 1:
                return None
            return img.format


def save_png(path: PathLike, array: np.ndarray) -> None:
    """Write an array as a PNG atomically (complete file or no change).

    Accepted arrays: HxW bool (written as 0/255), HxW uint8, HxW uint16,
    HxWx3 uint8 (RGB) and HxWx4 uint8 (RGBA). Parent directories are created.

    Raises:
        ValueError: unsupported dtype or shape.
        ClickmaskError: the file cannot be written.
    """
    data = np.asarray(array)
    if data.dtype == np.bool_ and data.ndim == 2:
        data = data.astype(np.uint8) * np.uint8(255)
    valid = (data.ndim == 2 and data.dtype in (np.uint8, np.uint16)) or (
        data.ndim == 3 and data.shape[2] in (3, 4) and data.dtype == np.uint8
    )
    if not valid:
        raise ValueError(
            f"save_png expects HxW bool/uint8/uint16 or HxWx3/HxWx4 uint8, "
            f"got shape {data.shape} dtype {data.dtype}"
        )
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise ValueError(f"save_png cannot write an empty image (shape {data.shape})")
    img = Image.fromarray(np.ascontiguousarray(data))
    try:
        with atomic_path(path) as temp:
            img.save(temp, format="PNG")
    except OSError as exc:
        reason = exc.strerror.lower() if exc.strerror else " ".join(str(exc).split())
        raise ClickmaskError(f"cannot write image '{path}': {reason}") from exc
