"""The same object in another frame: a video dataset (DAVIS2016_dev, ``images/<seq>/<frame>``, one object each).

The protocol (issue 24's DAVIS set):

- frames are sorted by file name within their video; the *targets* are every ``step``-th frame
  after the first (frames ``step``, ``2 step``, ...; :data:`FRAME_STEP` = 10), the object's mask
  in that frame (``masks/<seq>/<frame>.png``);
- the *reference* of every target of a video is its first frame, the object's mask there as the
  positive mask and no negative mask: the video holds one object, so there is no "rest of the
  object" or neighbouring object to suppress (RefCut's negative is optional), and the background
  is what the clicks' negatives already say;
- a target whose mask, or whose video's first mask, is under ``min_area`` pixels (or missing) is
  skipped and counted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clickmask.errors import DatasetError
from clickmask.evaluation.reference.cases import Case, CaseSet, read_mask
from clickmask.evaluation.reference.pairs import MIN_AREA

FRAME_STEP = 10
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
PROTOCOL = ("frames: every {step}th frame after the first of each video; reference = the video's first frame, "
            "its mask positive, no negative")


def frame_targets(videos: dict[str, list[str]], step: int = FRAME_STEP) -> list[tuple[str, str, str]]:
    """(video, target frame, reference frame) for every ``step``-th frame after the first, frames by name."""
    if step < 1:
        raise DatasetError(f"frame step must be at least 1, got {step}")
    out = []
    for video in sorted(videos):
        frames = sorted(videos[video])
        out += [(video, frame, frames[0]) for frame in frames[step::step]]
    return out


def list_videos(root: Path) -> dict[str, list[str]]:
    """The frame stems of each video folder under ``root/images``."""
    images = Path(root) / "images"
    videos = {d.name: [p.stem for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
              for d in sorted(images.iterdir()) if d.is_dir()} if images.is_dir() else {}
    videos = {v: f for v, f in videos.items() if f}
    if not videos:
        raise DatasetError(f"{images}: no video folders (images/<seq>/<frame>)")
    return videos


def frame_cases(root: Path, step: int = FRAME_STEP, min_area: int = MIN_AREA) -> CaseSet:
    """The cases of a video dataset folder (``images/<seq>/<frame>.*``, ``masks/<seq>/<frame>.png``)."""
    root = Path(root)
    videos = list_videos(root)
    suffix = {(v, p.stem): p.suffix for v in videos for p in (root / "images" / v).iterdir()}
    areas: dict[Path, int] = {}

    def area(path: Path) -> int:
        if path not in areas:
            areas[path] = int(np.count_nonzero(read_mask(path))) if path.is_file() else 0
        return areas[path]

    cases: list[Case] = []
    skipped: dict[str, str] = {}
    for video, frame, ref in frame_targets(videos, step):
        name = f"{video}/{frame}"
        gt, pos = root / "masks" / video / f"{frame}.png", root / "masks" / video / f"{ref}.png"
        if area(gt) < min_area:
            skipped[name] = f"the object covers {area(gt)} px (< {min_area}) in this frame"
        elif area(pos) < min_area:
            skipped[name] = f"the object covers {area(pos)} px (< {min_area}) in the reference frame {ref}"
        else:
            cases.append(Case(name, "frame", root / "images" / video / f"{frame}{suffix[(video, frame)]}", (gt,),
                              root / "images" / video / f"{ref}{suffix[(video, ref)]}", (pos,)))
    return CaseSet(PROTOCOL.format(step=step), ("frame",), cases, skipped)
