"""Videos and volumes as one kind of project item: a sequence of same-size frames.

A *sequence* is a video file (:data:`~clickmask.io.video.VIDEO_EXTENSIONS`,
read with PyAV) or a 3D volume (a NIfTI file ``.nii`` / ``.nii.gz``), whose
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


def sequence_kind(path: PathLike) -> str | None:
    """``"video"``, ``"volume"`` or None (not a sequence) from the file name."""
    name = Path(path).name.lower()
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
    if kind == "volume":
        return VolumeFrames(load_nifti(path), Path(path).name)
    return open_frames(path)
