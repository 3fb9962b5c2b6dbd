"""Errors raised by the project store."""

from __future__ import annotations

from clickmask.errors import ClickmaskError


class NotFoundError(ClickmaskError):
    """An image, instance or category id does not exist in the project."""


class ConflictError(ClickmaskError):
    """A write was based on a stale version (another tab or user changed the object)."""
