"""User-facing errors.

Every error a user can cause (bad file, bad click, missing model) is raised as a
:class:`ClickmaskError` whose message is one line naming the file (or object) and
the problem. The CLI prints it as ``clickmask: error: <message>`` and exits non-zero.
"""

from __future__ import annotations


class ClickmaskError(Exception):
    """An error with a one-line, user-readable message."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class ImageReadError(ClickmaskError):
    """An image file cannot be read or decoded."""


class DatasetError(ClickmaskError):
    """A dataset folder is empty, incomplete or inconsistent."""


class ModelError(ClickmaskError):
    """A model cannot be fetched, verified, installed or loaded."""


class ClickError(ClickmaskError):
    """A click is invalid (outside the image, wrong type)."""


class VideoReadError(ClickmaskError):
    """A video file or frame folder cannot be opened, or one of its frames cannot be decoded."""


class VolumeReadError(ClickmaskError):
    """A volume (NIfTI, DICOM series or file) or a label volume cannot be read or does not fit."""


class LargeImageError(ClickmaskError):
    """An image too large to decode whole: it is read window by window (:mod:`clickmask.io.pyramid`)."""
