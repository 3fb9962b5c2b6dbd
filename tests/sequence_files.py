"""Small generated videos and volumes with known objects (not a test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

W, H = 160, 120
RADIUS = 18


def disk_centre(i: int) -> tuple[int, int]:
    """Where the disk is in frame ``i`` (it moves 5 px right and 2 px down per frame)."""
    return 50 + 5 * i, 50 + 2 * i


def disk_mask(i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    cx, cy = disk_centre(i)
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= RADIUS ** 2


def draw(i: int) -> np.ndarray:
    """A textured ground with a red disk."""
    yy, xx = np.mgrid[0:H, 0:W]
    base = 90 + 30 * np.sin(xx / 9.0) * np.cos(yy / 7.0)
    img = np.stack([base, base + 10, base - 10], axis=-1)
    img[disk_mask(i)] = (220, 40, 40)
    return np.clip(img, 0, 255).astype(np.uint8)


def encode_video(path: Path, images, codec: str = "libx264", rate: int = 10, gop: int | None = None,
                 options: dict[str, str] | None = None) -> Path:
    """Write ``images`` (HxWx3 uint8, one size) as a video with PyAV."""
    import av

    images = list(images)
    container = av.open(str(path), mode="w")
    stream = container.add_stream(codec, rate=rate)
    stream.height, stream.width = images[0].shape[:2]
    stream.pix_fmt = "yuv420p"
    if gop is not None:
        stream.codec_context.gop_size = gop
    if options:
        stream.options = options
    for image in images:
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def write_video(path: Path, frames: int = 8) -> Path:
    """The red disk moving over the ground, ``frames`` frames (H.264)."""
    return encode_video(path, (draw(i) for i in range(frames)), options={"crf": "12"})


SPACING = (2.0, 0.8, 0.8)  # z, y, x (mm)


def sphere_labels(shape: tuple[int, int, int] = (10, 64, 64)) -> np.ndarray:
    """``[z, y, x]`` bool: a ball of radius 5 slices (4 mm z, 12 px in plane) in the middle."""
    z, y, x = np.mgrid[0: shape[0], 0: shape[1], 0: shape[2]].astype(np.float64)
    return ((z - 5) / 4.5) ** 2 + ((y - 30) / 14) ** 2 + ((x - 34) / 14) ** 2 <= 1.0


def write_ct_volume(path: Path, shape: tuple[int, int, int] = (10, 64, 64)) -> np.ndarray:
    """A CT-like NIfTI (Hounsfield units: soft tissue around a bright ball); returns its 4x4 affine."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    data = rng.normal(40, 8, shape)
    data[sphere_labels(shape)] = 250
    affine = np.diag([SPACING[2], SPACING[1], SPACING[0], 1.0])
    affine[:3, 3] = (-20.0, 15.0, 7.5)
    nib.save(nib.Nifti1Image(data.astype(np.int16).transpose(2, 1, 0), affine), str(path))
    return affine


def write_ct_series(folder: Path, slices: int = 8) -> np.ndarray:
    """A CT series (one file per slice, in shuffled name order) of the ball of :func:`sphere_labels`;
    returns its ``[z, y, x]`` labels."""
    from display_files import write_dicom

    folder.mkdir(parents=True, exist_ok=True)
    shape = (slices, 64, 64)
    labels = sphere_labels(shape)
    rng = np.random.default_rng(1)
    for z in range(slices):
        hu = rng.normal(40, 8, shape[1:])
        hu[labels[z]] = 250
        write_dicom(folder / f"im{(z * 5) % slices:03d}.dcm", (hu + 1024).astype(np.uint16),
                    SeriesInstanceUID="1.2.826.0.1.99", ImagePositionPatient=[0.0, 0.0, 2.0 * z],
                    ImageOrientationPatient=[1, 0, 0, 0, 1, 0], PixelSpacing=[0.8, 0.8], SliceThickness=2.0,
                    RescaleSlope=1, RescaleIntercept=-1024, InstanceNumber=z + 1)
    return labels
