"""Video datasets in the DAVIS layout: ``<root>/<name>/images/<seq>/NNNNN.jpg``,
``masks/<seq>/NNNNN.png`` (object > 127) and ``sequences.txt`` (one name per line;
without it, every folder under ``images``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from clickmask.errors import DatasetError
from clickmask.io.video import open_frames


@dataclass(frozen=True)
class VideoSample:
    """One annotated sequence: its frame folder and one mask file per frame (same order)."""

    name: str
    frames_dir: Path
    mask_paths: tuple[Path, ...]

    def open(self, max_frames: int | None = None) -> tuple["CutFrames", list[np.ndarray]]:
        """(the frames, the HxW bool ground-truth masks), the first ``max_frames`` only if given."""
        source = open_frames(self.frames_dir)
        n = len(source) if max_frames is None else min(len(source), max_frames)
        if len(self.mask_paths) < n:
            raise DatasetError(f"sequence '{self.name}' has {len(source)} frames but {len(self.mask_paths)} masks")
        gts = []
        w, h = source.size
        for path in self.mask_paths[:n]:
            try:
                gt = np.asarray(Image.open(path).convert("L")) > 127
            except OSError as exc:
                raise DatasetError(f"cannot read mask '{path}': {exc}") from exc
            if gt.shape != (h, w):
                raise DatasetError(f"mask '{path}' is {gt.shape[1]}x{gt.shape[0]}, its frames are {w}x{h}")
            gts.append(gt)
        return CutFrames(source, n), gts


class CutFrames:
    """The first ``n`` frames of a frame source."""

    def __init__(self, source, n: int) -> None:
        self.source, self.n = source, n

    def __len__(self) -> int:
        return self.n

    def frame(self, index: int) -> np.ndarray:
        if not 0 <= index < self.n:
            raise IndexError(f"frame {index} of {self.n}")
        return self.source.frame(index)


def load_video_dataset(root: Path | str, name: str, limit: int | None = None) -> list[VideoSample]:
    """The sequences of ``<root>/<name>`` (the first ``limit`` if given)."""
    folder = Path(root) / name
    images, masks = folder / "images", folder / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise DatasetError(f"'{folder}' is not a video dataset: it needs images/<sequence>/ and masks/<sequence>/")
    listing = folder / "sequences.txt"
    names = listing.read_text().split() if listing.is_file() else sorted(p.name for p in images.iterdir() if p.is_dir())
    samples = []
    for seq in names[:limit] if limit is not None else names:
        mask_paths = tuple(sorted((masks / seq).glob("*.png")))
        if not (images / seq).is_dir() or not mask_paths:
            raise DatasetError(f"sequence '{seq}' of '{folder}' has no frames or no masks")
        samples.append(VideoSample(seq, images / seq, mask_paths))
    if not samples:
        raise DatasetError(f"'{folder}' holds no sequences")
    return samples
