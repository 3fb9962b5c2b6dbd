"""Annotation formats: the in-memory model, exporters and importers.

* :mod:`clickmask.formats.annotations` -- :class:`Category`, :class:`Instance`,
  :class:`ImageAnnotation`, :class:`AnnotationSet`, label and instance maps.
* :func:`export` -- ``coco``, ``voc``, ``voc-color``, ``instance-png``,
  ``labelme``, ``yolo-seg`` (:data:`FORMATS`); layouts in :mod:`clickmask.formats.export`.
* :func:`import_coco`, :func:`import_labelme`.

Coordinates follow :mod:`clickmask.geometry`: pixel corners at integers (COCO);
the LabelMe module converts to LabelMe's pixel-centre convention.
"""

from clickmask.formats.annotations import (
    AnnotationSet,
    Category,
    ImageAnnotation,
    Instance,
    category_colors,
    default_palette,
    instance_map,
    label_map,
    validate,
)
from clickmask.formats._common import UNASSIGNED_POLICY
from clickmask.formats.export import DEFAULT_TOLERANCE, FORMATS, ExportResult, export, export_with_report
from clickmask.formats.importers import import_coco, import_labelme

__all__ = [
    "Category",
    "Instance",
    "ImageAnnotation",
    "AnnotationSet",
    "FORMATS",
    "DEFAULT_TOLERANCE",
    "UNASSIGNED_POLICY",
    "ExportResult",
    "export",
    "export_with_report",
    "import_coco",
    "import_labelme",
    "default_palette",
    "category_colors",
    "label_map",
    "instance_map",
    "validate",
]
