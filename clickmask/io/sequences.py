"""Videos and volumes as one kind of project item: a sequence of same-size frames.

A *sequence* is a video: a video file (:data:`~clickmask.io.video.VIDEO_EXTENSIONS`,
read with PyAV) or a folder of frames whose name ends in :data:`FRAMES_SUFFIX`
(``walk.frames/00000.jpg``, ...); or a 3D volume: a NIfTI file (``.nii`` /
``.nii.gz``) or a folder of at least two DICOM files (one series), whose
slices along z are its frames. :func:`open_sequence` gives a
:class:`~clickmask.io.video.FrameSource` for either. A volume's slices are
shown through one window for the whole volume (CT: the abdomen preset; MR and
others: the volume's 0.5..99.5 percentiles; ``Volume.default_window``), so the
model sees every slice the same way; its affine is kept for the NIfTI export.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from clickmask.io.video import VIDEO_EXTENSIONS, FrameSource, open_frames
from clickmask.io.volumes import Volume, load_nifti

PathLike = str | os.PathLike[str]

#: Lowercase name endings of volumes that are project items.
VOLUME_SUFFIXES = (".nii", ".nii.gz")
#: A folder whose name ends so is a video's frames (in natural name order).
FRAMES_SUFFIX = ".frames"


def _dicom_folder(path: Path) -> bool:
    """A folder of at least two DICOM files of one series, each placed in 3D (a volume to go through slice by
    slice); a folder of unrelated DICOM images is not one, and they stay 2D images."""
    from clickmask.io.images import DICOM_EXTENSIONS

    files = [c for c in path.iterdir() if c.is_file() and c.suffix.lower() in DICOM_EXTENSIONS]
    if len(files) < 2:
        return False
    import pydicom

    series = set()
    for file in files:
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True,
                                 specific_tags=["SeriesInstanceUID", "ImagePositionPatient"])
        except Exception:  # noqa: BLE001 - an unreadable file: not a series (its image entry says why)
            return False
        if "ImagePositionPatient" not in ds or "SeriesInstanceUID" not in ds:
            return False
        series.add(str(ds.SeriesInstanceUID))
    return len(series) == 1


def sequence_kind(path: PathLike) -> str | None:
    """``"video"``, ``"volume"`` or None (not a sequence) from the name (and, for a folder, its files)."""
    target = Path(path)
    name = target.name.lower()
    if target.is_dir():
        if name.endswith(FRAMES_SUFFIX):
            return "video"
        return "volume" if _dicom_folder(target) else None
    if name.endswith(VOLUME_SUFFIXES):
        return "volume"
    if Path(name).suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


class VolumeFrames:
    """A volume's slices along z as ``HxWx3 uint8`` frames through its default window, made on demand."""

    def __init__(self, volume: Volume, name: str = "") -> None:
        self.volume = volume
        self.window = volume.default_window()
        self._name = name or volume.name

    @property
    def name(self) -> str:
        return self._name

    @property
    def size(self) -> tuple[int, int]:
        _, h, w = self.volume.shape
        return int(w), int(h)

    def __len__(self) -> int:
        return self.volume.num_slices(0)

    def frame(self, index: int) -> np.ndarray:
        if not 0 <= int(index) < len(self):
            raise IndexError(f"{self.name}: slice {index} is out of range (0..{len(self) - 1})")
        return self.volume.slice_rgb(0, int(index), self.window)

    def close(self) -> None:
        pass


def open_sequence(path: PathLike) -> FrameSource:
    """A video (frames decoded on demand) or a volume (slices along z); one-line errors naming the file."""
    kind = sequence_kind(path)
    if kind == "volume" and Path(path).is_dir():
        from clickmask.io.volumes import load_dicom_series

        return VolumeFrames(load_dicom_series(path)[0], Path(path).name)
    if kind == "volume":
        return VolumeFrames(load_nifti(path), Path(path).name)
    return open_frames(path)
