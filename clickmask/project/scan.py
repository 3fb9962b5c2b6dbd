"""Finding the images, videos and volumes of a project folder."""

from __future__ import annotations

from pathlib import Path

from clickmask.io.images import DICOM_EXTENSIONS, IMAGE_EXTENSIONS

PROJECT_DIR = ".clickmask"


def scan_images(root: Path) -> list[str]:
    """Relative POSIX paths of the image files under ``root`` (sorted, hidden folders skipped), DICOM files
    included; the frames of a frame folder and the slices of a DICOM series are their sequence's, not images."""
    folders = {p for p in scan_sequences(root) if (root / p).is_dir()}
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS | DICOM_EXTENSIONS and path.is_file() \
                and rel.parent.as_posix() not in folders:
            out.append(rel.as_posix())
    return out


def scan_sequences(root: Path) -> list[str]:
    """Relative POSIX paths of the videos and volumes under ``root`` (sorted, hidden folders skipped):
    video and NIfTI files, ``*.frames`` folders and DICOM series folders."""
    from clickmask.io.sequences import sequence_kind

    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if sequence_kind(path) is not None:
            out.append(rel.as_posix())
    return out
