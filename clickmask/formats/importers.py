"""Importers: COCO instances files and LabelMe JSON files into an :class:`AnnotationSet`.

See :func:`clickmask.formats.coco.import_coco` and
:func:`clickmask.formats.labelme.import_labelme` for the details; both raise a
one-line :class:`~clickmask.errors.ClickmaskError` naming the file and the
problem for bad input.
"""

from __future__ import annotations

from clickmask.formats.coco import import_coco
from clickmask.formats.labelme import import_labelme

__all__ = ["import_coco", "import_labelme"]
