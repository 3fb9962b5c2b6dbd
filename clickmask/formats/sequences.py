"""Videos and volumes: label sequences out (PNG, COCO, NIfTI) and DAVIS-style PNG sequences in.

A sequence's annotation is one HxW label map per frame (or slice) whose
values are track ids, 0 = background (:meth:`clickmask.propagation.tracks.Tracks.label_maps`).

- **PNG sequence** (DAVIS's layout): ``<out_dir>/<name>.png`` per frame
  (``00000.png``, ... by default), 8-bit palette PNGs whose pixel values are
  the track ids, with the DAVIS (PASCAL VOC) palette; ids must be 1..255.
- **COCO**: one JSON file; ``images`` are the frames (``frame_index``,
  ``video``), ``annotations`` one per track present on a frame, with the
  track's id in ``track_id``, the mask as compressed RLE (COCO's own string
  counts) and its area and box; ``categories`` from the tracks' categories
  (one ``object`` category when none is given).
- **NIfTI label volume**: the ``[z, y, x]`` label volume on its volume's grid,
  written with the volume's affine (stored ``[x, y, z]`` as NIfTI does), so
  :func:`clickmask.io.volumes.load_labels` reads it back onto the same grid.
- **DICOM-SEG** (volumes read from a DICOM series): one binary Segmentation
  object (highdicom) referring to the series' slices, one segment per track
  (segment numbers 1..N in track id order, labelled with the track's
  category), frames only where a segment is present.

Every file is written atomically. :func:`read_png_sequence` reads a DAVIS-style
folder back (frame numbers from the file names) and
:func:`import_png_sequence` turns it into tracks.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from clickmask.errors import ClickmaskError
from clickmask.formats._common import ExportResult, write_image, write_json
from clickmask.formats.annotations import _voc_color
from clickmask.geometry.rle import encode_rle, mask_bbox
from clickmask.io.atomic import atomic_write_bytes

#: The largest track id a palette PNG can hold.
MAX_PNG_ID = 255
_FRAME_NUMBER = re.compile(r"(\d+)$")


def davis_palette() -> list[int]:
    """The 768 values of DAVIS's palette (PASCAL VOC's colour map: index 0 black, 1 red, 2 green, ...)."""
    return [v for i in range(256) for v in _voc_color(i)]


def _check_maps(label_maps: Sequence[np.ndarray], what: str) -> list[np.ndarray]:
    if len(label_maps) == 0:
        raise ClickmaskError(f"{what}: no frames to write")
    maps = [np.asarray(m) for m in label_maps]
    shape = maps[0].shape
    for i, m in enumerate(maps):
        if m.ndim != 2 or not (np.issubdtype(m.dtype, np.integer) or m.dtype == np.bool_):
            raise ClickmaskError(f"{what}: frame {i} is not a 2D integer label map (shape {m.shape}, {m.dtype})")
        if m.shape != shape:
            raise ClickmaskError(f"{what}: frame {i} is {m.shape[1]}x{m.shape[0]}, frame 0 is {shape[1]}x{shape[0]}")
        if m.size and int(m.min()) < 0:
            raise ClickmaskError(f"{what}: frame {i} holds a negative track id ({int(m.min())})")
    return maps


def _frame_names(names: Sequence[str] | None, count: int, what: str) -> list[str]:
    if names is None:
        return [f"{i:05d}" for i in range(count)]
    if len(names) != count:
        raise ClickmaskError(f"{what}: {len(names)} frame names for {count} frames")
    if len(set(names)) != len(names) or any(not n or "/" in n or "\\" in n for n in names):
        raise ClickmaskError(f"{what}: frame names must be distinct file names without folders")
    return list(names)


# ----------------------------------------------------------------------------- PNG sequences


def export_png_sequence(label_maps: Sequence[np.ndarray], out_dir: Path | str,
                        names: Sequence[str] | None = None) -> ExportResult:
    """One DAVIS palette PNG per frame, pixel value = track id (see the module doc)."""
    out = Path(out_dir)
    maps = _check_maps(label_maps, f"PNG sequence '{out}'")
    top = max(int(m.max()) if m.size else 0 for m in maps)
    if top > MAX_PNG_ID:
        raise ClickmaskError(f"PNG sequence '{out}': track id {top} does not fit an 8-bit palette PNG "
                             f"(ids 1..{MAX_PNG_ID})")
    stems = _frame_names(names, len(maps), f"PNG sequence '{out}'")
    palette = davis_palette()
    result = ExportResult(format="png-sequence")
    for stem, labels in zip(stems, maps):
        img = Image.fromarray(np.ascontiguousarray(labels.astype(np.uint8)))
        img.putpalette(palette)  # an "L" image with a palette becomes "P", its pixel values kept
        write_image(out / f"{stem}.png", img, result)
    return result


def read_png_sequence(folder: Path | str) -> tuple[list[int], list[np.ndarray]]:
    """A DAVIS-style folder of label PNGs: (frame numbers from the file names, HxW ``uint8`` label maps).

    Palette (mode P) and 8-bit gray PNGs are read as their pixel values; each
    file name must end in its frame number (``00012.png``); all frames share one size.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ClickmaskError(f"cannot read PNG sequence '{root}': not a folder")
    paths = sorted(root.glob("*.png"))
    if not paths:
        raise ClickmaskError(f"cannot read PNG sequence '{root}': no .png files")
    frames: list[int] = []
    maps: list[np.ndarray] = []
    for path in paths:
        match = _FRAME_NUMBER.search(path.stem)
        if match is None:
            raise ClickmaskError(f"cannot read label PNG '{path}': its name does not end in a frame number")
        try:
            with Image.open(path) as img:
                if img.mode not in ("P", "L"):
                    raise ClickmaskError(f"cannot read label PNG '{path}': mode {img.mode}, expected a palette "
                                         "(P) or 8-bit gray (L) image of track ids")
                labels = np.array(img, dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as exc:
            raise ClickmaskError(f"cannot read label PNG '{path}': {' '.join(str(exc).split())}") from None
        if maps and labels.shape != maps[0].shape:
            raise ClickmaskError(f"label PNG '{path}' is {labels.shape[1]}x{labels.shape[0]}, "
                                 f"'{paths[0].name}' is {maps[0].shape[1]}x{maps[0].shape[0]}")
        frame = int(match.group(1))
        if frame in frames:
            raise ClickmaskError(f"label PNG '{path}': frame {frame} appears twice in '{root}'")
        frames.append(frame)
        maps.append(labels)
    order = np.argsort(np.asarray(frames, np.int64), kind="stable")
    return [frames[i] for i in order], [maps[i] for i in order]


def import_png_sequence(folder: Path | str, tracks) -> dict[int, int]:
    """Read a DAVIS-style PNG folder into ``tracks`` (:class:`~clickmask.propagation.tracks.Tracks`).

    Each label value becomes a track with that id (new ids only) and is
    annotated on every frame the folder holds (empty where the object is
    absent: the file says so). Returns {track id: frames annotated with the object present}.
    """
    frames, maps = read_png_sequence(folder)
    count = len(tracks.frames)
    if frames[-1] >= count:
        raise ClickmaskError(f"PNG sequence '{folder}' has frame {frames[-1]}, the video has {count} frames")
    size = tracks.frames.frame(frames[0]).shape[:2]
    if maps[0].shape != size:
        raise ClickmaskError(f"PNG sequence '{folder}' is {maps[0].shape[1]}x{maps[0].shape[0]}, "
                             f"the video's frames are {size[1]}x{size[0]}")
    ids = sorted({int(v) for m in maps for v in np.unique(m)} - {0})
    taken = [i for i in ids if i in tracks]
    if taken:
        raise ClickmaskError(f"PNG sequence '{folder}': track ids {taken} exist already")
    present: dict[int, int] = {}
    for track_id in ids:
        tracks.add(track_id)
        present[track_id] = 0
        for frame, labels in zip(frames, maps):
            mask = labels == track_id
            tracks.annotate(track_id, frame, mask)
            present[track_id] += int(mask.any())
    return present


# ----------------------------------------------------------------------------- COCO


def export_coco_sequence(label_maps: Sequence[np.ndarray], out_path: Path | str, names: Sequence[str] | None = None,
                         video: str = "", categories: Mapping[int, str] | None = None) -> ExportResult:
    """COCO JSON with one image per frame and one instance per track and frame (see the module doc).

    names: the frames' file names (default ``00000.jpg``, ...); categories:
    track id -> category name (tracks without one are ``object``).
    """
    out = Path(out_path)
    maps = _check_maps(label_maps, f"COCO sequence '{out}'")
    files = _frame_names(names, len(maps), f"COCO sequence '{out}'") if names is not None else \
        [f"{i:05d}.jpg" for i in range(len(maps))]
    categories = dict(categories or {})
    cat_names = sorted(set(categories.values()) | {"object"})
    cat_ids = {name: k for k, name in enumerate(cat_names, start=1)}
    h, w = maps[0].shape
    images, annotations = [], []
    for index, (file, labels) in enumerate(zip(files, maps)):
        images.append({"id": index + 1, "file_name": file, "width": int(w), "height": int(h),
                       "frame_index": index, "video": video})
        for track_id in (int(v) for v in np.unique(labels) if v != 0):
            mask = labels == track_id
            rle = encode_rle(mask)
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1,
                                "category_id": cat_ids[categories.get(track_id, "object")],
                                "track_id": track_id, "segmentation": rle, "area": int(np.count_nonzero(mask)),
                                "bbox": mask_bbox(mask), "iscrowd": 0})
    data = {"info": {"description": f"clickmask tracks of {video or 'a sequence'}"},
            "videos": [{"id": 1, "name": video, "frames": len(maps)}],
            "images": images, "annotations": annotations,
            "categories": [{"id": cid, "name": name} for name, cid in cat_ids.items()]}
    result = ExportResult(format="coco-sequence")
    write_json(out, data, result)
    return result


# ----------------------------------------------------------------------------- NIfTI


def export_nifti_labels(labels: np.ndarray, affine: np.ndarray, out_path: Path | str) -> ExportResult:
    """Write a ``[z, y, x]`` integer label volume as NIfTI-1 with ``affine`` (the volume's own, 4x4).

    ``.nii.gz`` is gzip-compressed, ``.nii`` not; the smallest unsigned type
    that holds the labels (uint8 or uint16; int32 above) is stored.
    """
    import nibabel as nib

    out = Path(out_path)
    if not out.name.endswith((".nii", ".nii.gz")):
        raise ClickmaskError(f"cannot write NIfTI '{out}': the name must end in .nii or .nii.gz")
    data = np.asarray(labels)
    if data.ndim != 3 or not (np.issubdtype(data.dtype, np.integer) or data.dtype == np.bool_):
        raise ClickmaskError(f"cannot write NIfTI '{out}': labels must be a 3D integer array "
                             f"(got shape {data.shape}, {data.dtype})")
    matrix = np.asarray(affine, np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
        raise ClickmaskError(f"cannot write NIfTI '{out}': the affine must be a finite, invertible 4x4 matrix")
    low = int(data.min()) if data.size else 0
    high = int(data.max()) if data.size else 0
    if low < 0:
        raise ClickmaskError(f"cannot write NIfTI '{out}': negative label {low}")
    dtype = np.uint8 if high <= 255 else np.uint16 if high <= 65535 else np.int32
    image = nib.Nifti1Image(np.ascontiguousarray(data.astype(dtype).transpose(2, 1, 0)), matrix)
    image.header.set_xyzt_units("mm")
    image.set_sform(matrix, code=1)
    image.set_qform(matrix, code=1)
    payload = image.to_bytes()
    if out.name.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    result = ExportResult(format="nifti-labels")
    try:
        atomic_write_bytes(out, payload)
    except OSError as exc:
        raise ClickmaskError(f"cannot write '{out}': {exc.strerror or exc}") from None
    result.files.append(out)
    return result


# ----------------------------------------------------------------------------- DICOM-SEG


def export_dicom_seg(labels: np.ndarray, source_files: Sequence[Path | str], out_path: Path | str,
                     names: Mapping[int, str] | None = None) -> ExportResult:
    """Write a ``[z, y, x]`` label volume of track ids as a DICOM Segmentation of its DICOM series.

    source_files: the series' files, slice ``z`` of ``labels`` on ``source_files[z]``
    (:attr:`clickmask.io.volumes.Volume.sources`); names: track id -> segment label
    (default ``track <id>``). Segments are numbered 1..N in track id order.
    """
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    import clickmask

    out = Path(out_path)
    data = np.asarray(labels)
    if data.ndim != 3 or not np.issubdtype(data.dtype, np.integer):
        raise ClickmaskError(f"cannot write DICOM-SEG '{out}': labels must be a 3D integer array "
                             f"(got shape {data.shape}, {data.dtype})")
    if len(source_files) != data.shape[0]:
        raise ClickmaskError(f"cannot write DICOM-SEG '{out}': {data.shape[0]} slices of labels "
                             f"but {len(source_files)} source DICOM files")
    ids = [int(v) for v in np.unique(data) if v > 0]
    if not ids:
        raise ClickmaskError(f"cannot write DICOM-SEG '{out}': no labelled voxel (a segmentation needs a segment)")
    try:
        sources = [pydicom.dcmread(str(f)) for f in source_files]
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise ClickmaskError(f"cannot write DICOM-SEG '{out}': cannot read a source slice: {exc}") from None
    _complete_header(sources)
    rows, cols = int(sources[0].Rows), int(sources[0].Columns)
    if (rows, cols) != data.shape[1:]:
        raise ClickmaskError(f"cannot write DICOM-SEG '{out}': labels are {data.shape[1]}x{data.shape[2]}, "
                             f"the series' slices {rows}x{cols}")
    segments = np.zeros(data.shape, np.uint16)
    algorithm = hd.AlgorithmIdentificationSequence(name="clickmask", version=clickmask.__version__,
                                                   family=codes.cid7162.ArtificialIntelligence)
    descriptions = []
    for number, track in enumerate(ids, start=1):
        segments[data == track] = number
        label = (names or {}).get(track) or f"track {track}"
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=label[:64], tracking_id=f"track {track}",
            tracking_uid=hd.UID(), segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
            algorithm_identification=algorithm))
    try:
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=segments, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=1000,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="clickmask",
            manufacturer_model_name="clickmask", software_versions=clickmask.__version__, device_serial_number="0",
            series_description="clickmask segmentation")
    except (ValueError, AttributeError, TypeError) as exc:
        raise ClickmaskError(f"cannot write DICOM-SEG '{out}': {exc}") from None
    import io

    buffer = io.BytesIO()
    seg.save_as(buffer)
    result = ExportResult(format="dicom-seg")
    try:
        atomic_write_bytes(out, buffer.getvalue())
    except OSError as exc:
        raise ClickmaskError(f"cannot write '{out}': {exc.strerror or exc}") from None
    result.files.append(out)
    return result


#: Patient and study attributes a SEG copies from its sources (DICOM type 2: present, possibly empty).
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _complete_header(sources: list) -> None:
    """Fill what an anonymised or minimal series may leave out, in memory only (the user's files are not
    touched): the SOP class and instance from the file meta, one generated UID each for the series' study,
    series and frame of reference, and the patient and study attributes a SEG copies as empty values."""
    import highdicom as hd

    shared = {"StudyInstanceUID": None, "SeriesInstanceUID": None, "FrameOfReferenceUID": None}
    for ds in sources:
        meta = getattr(ds, "file_meta", None)
        if not ds.get("SOPClassUID") and meta is not None and meta.get("MediaStorageSOPClassUID"):
            ds.SOPClassUID = meta.MediaStorageSOPClassUID
        if not ds.get("SOPInstanceUID") and meta is not None and meta.get("MediaStorageSOPInstanceUID"):
            ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        for key in shared:
            if not ds.get(key):
                shared[key] = shared[key] or hd.UID()
                setattr(ds, key, shared[key])
        for key in _TYPE2:
            if key not in ds:
                setattr(ds, key, "")
