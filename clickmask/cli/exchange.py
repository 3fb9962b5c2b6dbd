"""``clickmask export`` and ``clickmask import``: a project's annotations to and from standard formats."""

from __future__ import annotations

import argparse
from pathlib import Path

from clickmask.formats import FORMATS
from clickmask.formats.geo import GEO_FORMATS
from clickmask.project import open_project
from clickmask.project.exchange import export_project_report, import_annotations
from clickmask.project.sequences import SequenceStore
from clickmask.server.sequences import SEQUENCE_FORMATS, export_sequence


def add_parser(sub) -> None:
    exp = sub.add_parser("export", help="export a project's annotations")
    exp.set_defaults(run=run_export)
    exp.add_argument("project", type=Path, help="the project's image folder")
    exp.add_argument("--format", required=True, choices=[*FORMATS, *SEQUENCE_FORMATS],
                     help=f"images: {', '.join(FORMATS)}; videos and volumes: {', '.join(SEQUENCE_FORMATS)}")
    exp.add_argument("--out", type=Path, required=True, help="output folder")
    exp.add_argument("--tolerance", type=float, default=None,
                     help="polygon simplification in pixels (default: 1 for labelme and yolo-seg, else 0)")
    exp.add_argument("--crs", default=None,
                     help="geojson/shapefile/gpkg: reproject to this CRS, e.g. EPSG:4326 (default: each raster's own)")
    exp.add_argument("--db", default=None, help="SQLAlchemy database URL")

    imp = sub.add_parser("import", help="import COCO, LabelMe or GIS vector annotations into a project")
    imp.set_defaults(run=run_import)
    imp.add_argument("project", type=Path, help="the project's image folder")
    imp.add_argument("--format", required=True, choices=["coco", "labelme", *GEO_FORMATS])
    imp.add_argument("source", type=Path,
                     help="COCO JSON file, LabelMe folder / JSON file, or a vector file named after its image")
    imp.add_argument("--db", default=None, help="SQLAlchemy database URL")


def run_export(args: argparse.Namespace) -> int:
    store = open_project(args.project, url=args.db)
    if args.format in SEQUENCE_FORMATS:
        return _export_sequences(store, args.format, args.out)
    result = export_project_report(store, args.format, args.out, tolerance=args.tolerance, crs=args.crs)
    print(f"wrote {len(result.files)} files to {args.out}")
    if result.unassigned:
        print(result.unassigned_message())
    return 0


def _export_sequences(store, fmt: str, out: Path) -> int:
    """Every video (every volume, for ``nifti``; every DICOM series, for ``dicom-seg``) of the project
    with tracks, in ``fmt``."""
    from clickmask.io.sequences import open_sequence

    sequences = SequenceStore(store)
    sequences.sync()
    files = 0
    for info in sequences.list():
        if not info["tracks"] or (fmt in ("nifti", "dicom-seg") and info["kind"] != "volume"):
            continue
        source = open_sequence(sequences.path(info["id"]))
        if fmt == "dicom-seg" and not source.volume.sources:
            continue
        try:
            files += len(export_sequence(sequences, info["id"], source, fmt, out))
        finally:
            if hasattr(source, "close"):
                source.close()
    print(f"wrote {files} files to {out}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    store = open_project(args.project, url=args.db)
    result = import_annotations(store, args.source, args.format)
    print(f"imported {result['added']} instances ({result['skipped']} for images not in the project)")
    return 0
