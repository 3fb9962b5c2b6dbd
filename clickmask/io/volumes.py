"""3D volumes: NIfTI (nibabel), DICOM series and single DICOM files (pydicom), label volumes.

Conventions of a :class:`Volume`:

* ``data`` is ``float32`` indexed ``data[z, y, x]``: ``z`` is the slowest axis
  of the file (NIfTI's third axis; the slice of a DICOM series), ``y`` the row
  and ``x`` the column of a slice.
* ``spacing`` is ``(z, y, x)`` in millimetres, in the same order as ``data``.
* ``affine`` is a 4x4 matrix giving world coordinates (RAS+, millimetres, as in
  NIfTI) of a voxel from its indices in *reversed* array order:
  ``affine @ (x, y, z, 1)`` is the centre of ``data[z, y, x]``. For a NIfTI file
  it is nibabel's affine unchanged; for DICOM it is built from the slices'
  ImagePositionPatient / ImageOrientationPatient / PixelSpacing (DICOM's LPS
  turned into RAS), so a NIfTI label volume made from the same series can be
  matched to it.
* Values are what the modality measures: Hounsfield units for CT (DICOM's
  RescaleSlope and RescaleIntercept applied, NIfTI's scl_slope / scl_inter too),
  raw signal for MR.

A DICOM series is the set of files of one SeriesInstanceUID in a folder; its
slices are ordered by their position along the slice normal (the cross product
of the two ImageOrientationPatient directions, dotted with
ImagePositionPatient), lowest first. Duplicated or missing slices, mixed series
and slices of different size or orientation are refused. Patient and study
identification is returned apart from the volume, as :class:`DicomInfo`.

Every failure raises :class:`~clickmask.errors.VolumeReadError` with one line
naming the file or folder and the problem.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clickmask.errors import VolumeReadError
from clickmask.io.window import Window, gray_to_rgb, percentile_window, preset, window_to_uint8

PathLike = str | os.PathLike[str]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")

#: LPS (DICOM patient coordinates) -> RAS (NIfTI world coordinates).
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: Media Storage Directory Storage: a DICOMDIR index, not an image.
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
#: Tolerances: direction cosines; slice positions closer than this (mm) are the same slice.
_ORIENTATION_TOL = 1e-4
_DUPLICATE_TOL_MM = 1e-3
#: A gap larger than this many median steps means missing slices; a step off the median
#: by more than this fraction is irregular spacing.
_MISSING_GAP = 1.5
_IRREGULAR_FRACTION = 0.05
#: A label grid matches its volume when the voxel-to-voxel map is a signed axis permutation
#: within these tolerances (unitless for the directions, voxels for the offset).
_GRID_DIRECTION_TOL = 1e-3
_GRID_OFFSET_TOL = 0.05
#: Percentile of a volume at or below which it is taken for CT when the modality is not given.
_CT_AIR_HU = -500.0

_AXIS_NAMES = ("z", "y", "x")


# ----------------------------------------------------------------------------- the volume


def _check_affine(affine: Any, source: str) -> np.ndarray:
    """Return ``affine`` as a 4x4 float64 array, or raise if it does not describe a 3D grid."""
    try:
        matrix = np.array(affine, dtype=np.float64)
    except (TypeError, ValueError):
        raise VolumeReadError(f"{source}: invalid affine (not a numeric matrix)") from None
    if matrix.shape != (4, 4):
        raise VolumeReadError(f"{source}: invalid affine (shape {matrix.shape}, expected 4x4)")
    if not np.all(np.isfinite(matrix)):
        raise VolumeReadError(f"{source}: invalid affine (it holds NaN or infinite values)")
    if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0]):
        raise VolumeReadError(f"{source}: invalid affine (last row {matrix[3].tolist()}, expected [0, 0, 0, 1])")
    axes = matrix[:3, :3]
    norms = np.linalg.norm(axes, axis=0)
    if np.any(norms <= 0.0):
        zero = ", ".join(_AXIS_NAMES[2 - i] for i in np.flatnonzero(norms <= 0.0))
        raise VolumeReadError(f"{source}: invalid affine (zero voxel size along {zero})")
    # |det| / product of the column lengths is 1 for orthogonal axes and 0 for degenerate ones.
    if abs(np.linalg.det(axes)) / float(np.prod(norms)) < 1e-3:
        raise VolumeReadError(f"{source}: invalid affine (its voxel axes are parallel: the grid is degenerate)")
    return matrix


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D scalar volume; see the module docstring for the axis order and the affine."""

    data: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    modality: str = ""
    name: str = ""
    #: True for DICOM MONOCHROME1 (high values shown dark): :meth:`slice_rgb` inverts the gray.
    invert: bool = False
    #: A DICOM series' files, one per slice in z order (what a DICOM-SEG refers to); empty otherwise.
    sources: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        label = self.name or "volume"
        if data.ndim != 3 or min(data.shape) < 1:
            raise VolumeReadError(f"{label}: a volume needs a 3D array with at least one voxel (got shape {data.shape})")
        object.__setattr__(self, "data", np.ascontiguousarray(data, dtype=np.float32))
        spacing = tuple(float(s) for s in self.spacing)
        if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
            raise VolumeReadError(f"{label}: invalid voxel spacing {self.spacing} (3 positive numbers, z y x)")
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "affine", _check_affine(self.affine, label))
        object.__setattr__(self, "modality", str(self.modality or "").upper())

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(z, y, x)`` voxel counts."""
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]

    def num_slices(self, axis: int = 0) -> int:
        """How many slices there are along ``axis`` (0 = z, 1 = y, 2 = x)."""
        return self.shape[_check_axis(axis)]

    def slice(self, axis: int, index: int) -> np.ndarray:
        """The 2D ``float32`` plane at ``index`` along ``axis`` (a read-only view).

        ``axis`` 0 gives ``data[index]`` (rows y, columns x), 1 gives
        ``data[:, index]`` (rows z, columns x), 2 gives ``data[:, :, index]``
        (rows z, columns y). Negative indices are not accepted.
        """
        axis = _check_axis(axis)
        count = self.shape[axis]
        if not isinstance(index, (int, np.integer)) or not 0 <= int(index) < count:
            raise VolumeReadError(
                f"{self.name or 'volume'}: slice {index} is out of range along {_AXIS_NAMES[axis]} (0..{count - 1})"
            )
        where: list[slice | int] = [slice(None)] * 3
        where[axis] = int(index)
        plane = self.data[tuple(where)]
        plane.flags.writeable = False
        return plane

    def slice_spacing(self, axis: int) -> tuple[float, float]:
        """``(row, column)`` pixel spacing in mm of the slices along ``axis``."""
        axis = _check_axis(axis)
        rest = [a for a in range(3) if a != axis]
        return self.spacing[rest[0]], self.spacing[rest[1]]

    def default_window(self) -> Window:
        """CT: the abdomen preset; any other modality: the 0.5..99.5 percentiles of the whole volume."""
        if self.modality == "CT":
            return preset("ct-abdomen")
        return percentile_window(self.data)

    def slice_rgb(self, axis: int, index: int, window: Window | None = None) -> np.ndarray:
        """The slice as ``HxWx3 uint8`` through ``window`` (default: :meth:`default_window`): what the model sees."""
        gray = window_to_uint8(self.slice(axis, index), window or self.default_window())
        if self.invert:
            gray = np.uint8(255) - gray
        return gray_to_rgb(gray)


def _check_axis(axis: int) -> int:
    if not isinstance(axis, (int, np.integer)) or int(axis) not in (0, 1, 2):
        raise VolumeReadError(f"invalid slice axis {axis!r} (0 = z, 1 = y, 2 = x)")
    return int(axis)


def _volume_error(kind: str, path: Path, problem: str) -> VolumeReadError:
    return VolumeReadError(f"cannot read {kind} '{path}': {problem}")


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, EOFError) or "truncated" in text.lower() or "end of file" in text.lower():
        return "file is truncated"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_path(kind: str, path: PathLike, *, folder: bool) -> Path:
    target = Path(path)
    if not target.exists():
        raise _volume_error(kind, target, "not found")
    if folder and not target.is_dir():
        raise _volume_error(kind, target, "not a folder")
    if not folder:
        if target.is_dir():
            raise _volume_error(kind, target, "is a folder, not a file")
        if target.stat().st_size == 0:
            raise _volume_error(kind, target, "file is empty")
    return target


# ----------------------------------------------------------------------------- NIfTI


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _open_nifti(kind: str, path: PathLike) -> tuple[Path, Any]:
    import nibabel as nib

    file = _check_path(kind, path, folder=False)
    try:
        img = nib.load(str(file))
    except Exception as exc:  # nibabel raises ImageFileError, OSError, EOFError, gzip / zlib errors, ValueError
        raise _volume_error(kind, file, _describe(exc)) from None
    shape = tuple(int(n) for n in img.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    elif len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3:
        raise _volume_error(kind, file, f"expected a 3D volume, got shape {tuple(img.shape)}")
    return file, img


def _nifti_array(kind: str, file: Path, img: Any, dtype: Any | None) -> np.ndarray:
    """The voxels in ``(x, y, z)`` order (nibabel's), scaled; ``dtype=None`` keeps the stored type."""
    try:
        if dtype is None:
            array = np.asanyarray(img.dataobj)
        else:
            array = img.get_fdata(dtype=dtype)
    except Exception as exc:
        raise _volume_error(kind, file, _describe(exc)) from None
    array = np.asarray(array)
    if array.ndim == 4:
        array = array[..., 0]
    elif array.ndim == 2:
        array = array[:, :, np.newaxis]
    return array


def _guess_modality(data: np.ndarray) -> str:
    """``"CT"`` when the volume holds air-like values (Hounsfield units below -500), else ``""``."""
    finite = data[np.isfinite(data)]
    if finite.size and float(np.percentile(finite[:: max(1, finite.size // 1_000_000)], 1.0)) <= _CT_AIR_HU:
        return "CT"
    return ""


def load_nifti(path: PathLike, modality: str | None = None) -> Volume:
    """Read a NIfTI-1/2 volume (``.nii`` or ``.nii.gz``) as a :class:`Volume`.

    A 4D file with a single volume is accepted. ``modality`` (``"CT"``, ``"MR"``,
    ...) is not stored in NIfTI: when not given, a volume with values below
    -500 in its first percentile is taken for CT, any other is left unknown
    (and windowed by percentiles). The spacing is the length of the affine's
    voxel axes.
    """
    kind = "NIfTI volume"
    file, img = _open_nifti(kind, path)
    affine = _check_affine(img.affine, f"cannot read {kind} '{file}'")
    data = _nifti_array(kind, file, img, np.float32).transpose(2, 1, 0)
    spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0)[::-1])
    mod = _guess_modality(data) if modality is None else modality
    return Volume(data=data, spacing=spacing, affine=affine, modality=mod, name=file.name)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- label volumes


def _grid_map(volume: Volume, label_affine: np.ndarray, label_shape_xyz: tuple[int, ...]) -> list[tuple[int, bool]] | None:
    """For each volume axis (x, y, z): the label axis and whether it is flipped; None if the grids differ."""
    mapping = np.linalg.inv(volume.affine) @ label_affine  # label voxel (x, y, z) -> volume voxel
    rotation, offset = mapping[:3, :3], mapping[:3, 3]
    vol_shape_xyz = volume.shape[::-1]
    result: list[tuple[int, bool]] = []
    for axis in range(3):
        row = rotation[axis]
        source = int(np.argmax(np.abs(row)))
        sign = float(np.sign(row[source]))
        expected = np.zeros(3)
        expected[source] = sign
        if not np.allclose(row, expected, atol=_GRID_DIRECTION_TOL):
            return None
        if label_shape_xyz[source] != vol_shape_xyz[axis]:
            return None
        # +1: volume index = label index (offset 0); -1: volume index = (n - 1) - label index.
        want = 0.0 if sign > 0 else float(vol_shape_xyz[axis] - 1)
        if abs(offset[axis] - want) > _GRID_OFFSET_TOL:
            return None
        result.append((source, sign < 0))
    if sorted(source for source, _ in result) != [0, 1, 2]:
        return None
    return result


def _grid_text(shape_zyx: tuple[int, ...], affine: np.ndarray) -> str:
    spacing = np.linalg.norm(affine[:3, :3], axis=0)[::-1]
    origin = affine[:3, 3]
    return (
        f"{'x'.join(str(n) for n in shape_zyx)} voxels (z y x), spacing "
        f"{' '.join(f'{s:g}' for s in spacing)} mm, origin {' '.join(f'{o:.2f}' for o in origin)}"
    )


def load_labels(path: PathLike, volume: Volume) -> np.ndarray:
    """Read a NIfTI label volume and return it on ``volume``'s grid, indexed ``[z, y, x]``.

    The label file may store the same grid with its axes permuted or flipped
    (for example a NIfTI written from a DICOM series with its rows reversed):
    the array is then reordered to match. Any other difference (shape,
    spacing, origin, orientation) is refused. Integer label types are kept;
    float labels must hold whole numbers and become ``int32``.
    """
    kind = "label volume"
    file, img = _open_nifti(kind, path)
    affine = _check_affine(img.affine, f"cannot read {kind} '{file}'")
    raw = _nifti_array(kind, file, img, None)
    if not np.issubdtype(raw.dtype, np.integer):
        if np.issubdtype(raw.dtype, np.bool_):
            raw = raw.astype(np.uint8)
        else:
            values = np.asarray(raw, dtype=np.float64)
            if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
                raise _volume_error(kind, file, "label values must be whole numbers")
            raw = values.astype(np.int32)
    mapping = _grid_map(volume, affine, tuple(raw.shape))
    if mapping is None:
        raise VolumeReadError(
            f"label volume '{file}' does not lie on the grid of '{volume.name or 'the volume'}': "
            f"labels {_grid_text(tuple(raw.shape[::-1]), affine)}; "
            f"volume {_grid_text(volume.shape, volume.affine)}"
        )
    aligned = np.transpose(raw, [source for source, _ in mapping])
    flips = tuple(axis for axis, (_, flipped) in enumerate(mapping) if flipped)
    if flips:
        aligned = np.flip(aligned, axis=flips)
    return np.ascontiguousarray(aligned.transpose(2, 1, 0))


# ----------------------------------------------------------------------------- DICOM


@dataclass(frozen=True)
class DicomInfo:
    """Identification of a DICOM file or series, kept apart from its :class:`Volume`.

    The volume holds only geometry and intensities, so exporting it cannot leak
    who the patient is. The patient fields are left out of ``repr``.
    """

    patient_name: str = field(default="", repr=False)
    patient_id: str = field(default="", repr=False)
    patient_birth_date: str = field(default="", repr=False)
    patient_sex: str = field(default="", repr=False)
    study_instance_uid: str = ""
    study_date: str = ""
    study_description: str = ""
    series_instance_uid: str = ""
    series_number: str = ""
    series_description: str = ""
    modality: str = ""
    manufacturer: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


_INFO_TAGS = {
    "patient_name": "PatientName",
    "patient_id": "PatientID",
    "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex",
    "study_instance_uid": "StudyInstanceUID",
    "study_date": "StudyDate",
    "study_description": "StudyDescription",
    "series_instance_uid": "SeriesInstanceUID",
    "series_number": "SeriesNumber",
    "series_description": "SeriesDescription",
    "modality": "Modality",
    "manufacturer": "Manufacturer",
}


def _info(ds: Any) -> DicomInfo:
    values = {}
    for key, keyword in _INFO_TAGS.items():
        value = ds.get(keyword, "")
        values[key] = "" if value is None else str(value)
    return DicomInfo(**values)


def _floats(ds: Any, keyword: str, count: int) -> np.ndarray | None:
    value = ds.get(keyword)
    if value is None:
        return None
    try:
        numbers = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if numbers.shape != (count,) or not np.all(np.isfinite(numbers)):
        return None
    return numbers


def _has_pixels(ds: Any) -> bool:
    return any(keyword in ds for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))


@dataclass
class _Slice:
    file: Path
    ds: Any  # header only (stop_before_pixels)
    position: float = 0.0


def _read_header(path: Path) -> Any | None:
    """The header of a DICOM file, or None if the file is not DICOM (or is a DICOMDIR)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except InvalidDicomError:
        return None
    except Exception as exc:
        raise _volume_error("DICOM file", path, _describe(exc)) from None
    if str(ds.get("SOPClassUID", "")) == _DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        return None
    return ds


def _geometry(kind: str, where: Path, first: _Slice) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Row direction, column direction (unit, LPS) and (row, column) pixel spacing of a slice."""
    ds = first.ds
    orientation = _floats(ds, "ImageOrientationPatient", 6)
    if orientation is None:
        row_dir, col_dir = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    else:
        row_dir, col_dir = orientation[:3], orientation[3:]
        if np.linalg.norm(row_dir) == 0 or np.linalg.norm(col_dir) == 0:
            raise _volume_error(kind, where, f"{first.file.name} has a zero ImageOrientationPatient direction")
        row_dir, col_dir = row_dir / np.linalg.norm(row_dir), col_dir / np.linalg.norm(col_dir)
    pixel = _floats(ds, "PixelSpacing", 2)
    if pixel is None:
        pixel = _floats(ds, "ImagerPixelSpacing", 2)
    if pixel is None:
        pixel = np.array([1.0, 1.0])
    if np.any(pixel <= 0):
        raise _volume_error(kind, where, f"{first.file.name} has a non-positive PixelSpacing {pixel.tolist()}")
    return row_dir, col_dir, (float(pixel[0]), float(pixel[1]))


def _check_slice_header(kind: str, where: Path, item: _Slice) -> None:
    ds = item.ds
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise _volume_error(kind, where, f"{item.file.name} is a multi-frame DICOM ({frames} frames), not supported yet")
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1:
        raise _volume_error(
            kind, where, f"{item.file.name} is a colour DICOM ({samples} samples per pixel); only grayscale is supported"
        )
    if "Rows" not in ds or "Columns" not in ds:
        raise _volume_error(kind, where, f"{item.file.name} has no image size (Rows / Columns)")


def _order_slices(kind: str, folder: Path, slices: list[_Slice], normal: np.ndarray) -> float:
    """Sort ``slices`` along ``normal``; refuse duplicates, gaps and irregular steps; return the step in mm."""
    for item in slices:
        position = _floats(item.ds, "ImagePositionPatient", 3)
        if position is None:
            raise _volume_error(kind, folder, f"{item.file.name} has no ImagePositionPatient: the slices cannot be ordered")
        item.position = float(np.dot(normal, position))
    slices.sort(key=lambda s: (s.position, s.file.name))
    positions = np.array([s.position for s in slices])
    steps = np.diff(positions)
    for i in np.flatnonzero(steps <= _DUPLICATE_TOL_MM):
        raise _volume_error(
            kind,
            folder,
            f"duplicated slice at position {positions[i]:.3f} mm: {slices[i].file.name} and {slices[i + 1].file.name}",
        )
    step = float(np.median(steps))
    for i in np.flatnonzero(steps > _MISSING_GAP * step):
        missing = int(round(steps[i] / step)) - 1
        raise _volume_error(
            kind,
            folder,
            f"missing slice(s): a gap of {steps[i]:.3f} mm (about {missing} slice(s)) between "
            f"{slices[i].file.name} ({positions[i]:.3f} mm) and {slices[i + 1].file.name} "
            f"({positions[i + 1]:.3f} mm), where the spacing is {step:.3f} mm",
        )
    irregular = np.flatnonzero(np.abs(steps - step) > _IRREGULAR_FRACTION * step)
    if irregular.size:
        i = int(irregular[0])
        raise _volume_error(
            kind,
            folder,
            f"irregular slice spacing: {steps[i]:.3f} mm between {slices[i].file.name} and "
            f"{slices[i + 1].file.name}, where the spacing is {step:.3f} mm",
        )
    return step


def _single_slice_step(ds: Any) -> float:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            value = float(ds.get(keyword) or 0.0)
        except (TypeError, ValueError):
            continue
        if np.isfinite(value) and value > 0:
            return value
    return 1.0


def _read_pixels(kind: str, where: Path, item: _Slice, rows: int, columns: int) -> np.ndarray:
    """The modality values (rescale slope / intercept applied) of one slice, ``rows x columns`` float32."""
    import pydicom

    try:
        ds = pydicom.dcmread(str(item.file))
    except Exception as exc:
        raise _volume_error(kind, where, f"{item.file.name}: {_describe(exc)}") from None
    if not _has_pixels(ds):
        raise _volume_error(kind, where, f"{item.file.name} has no pixel data")
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # missing decoder, corrupt or truncated data
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        syntax_text = f" (transfer syntax {syntax.name})" if syntax is not None else ""
        raise _volume_error(
            kind, where, f"{item.file.name}: cannot decode the pixel data{syntax_text}: {_describe(exc)}"
        ) from None
    if pixels.shape != (rows, columns):
        raise _volume_error(
            kind, where, f"{item.file.name}: pixel data of shape {pixels.shape}, expected {rows}x{columns}"
        )
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    values = pixels.astype(np.float64) * slope + intercept
    return values.astype(np.float32)


def _build_volume(kind: str, where: Path, slices: list[_Slice], name: str) -> Volume:
    first = slices[0]
    row_dir, col_dir, (row_spacing, col_spacing) = _geometry(kind, where, first)
    normal = np.cross(row_dir, col_dir)
    rows, columns = int(first.ds.Rows), int(first.ds.Columns)
    for item in slices:
        _check_slice_header(kind, where, item)
        if (int(item.ds.Rows), int(item.ds.Columns)) != (rows, columns):
            raise _volume_error(
                kind,
                where,
                f"slices of different sizes: {first.file.name} is {rows}x{columns}, "
                f"{item.file.name} is {int(item.ds.Rows)}x{int(item.ds.Columns)}",
            )
        orientation = _floats(item.ds, "ImageOrientationPatient", 6)
        if len(slices) > 1 and orientation is None:
            raise _volume_error(kind, where, f"{item.file.name} has no ImageOrientationPatient")
        if orientation is not None and not np.allclose(
            orientation / np.repeat([np.linalg.norm(orientation[:3]), np.linalg.norm(orientation[3:])], 3),
            np.concatenate([row_dir, col_dir]),
            atol=_ORIENTATION_TOL,
        ):
            raise _volume_error(
                kind, where, f"slices of different orientations: {first.file.name} and {item.file.name}"
            )
        pixel = _floats(item.ds, "PixelSpacing", 2)
        if pixel is not None and not np.allclose(pixel, [row_spacing, col_spacing], rtol=1e-4):
            raise _volume_error(
                kind, where, f"slices of different pixel spacing: {first.file.name} and {item.file.name}"
            )

    if len(slices) > 1:
        step = _order_slices(kind, where, slices, normal)
        origin = _floats(slices[0].ds, "ImagePositionPatient", 3)
        last = _floats(slices[-1].ds, "ImagePositionPatient", 3)
        slice_vector = (last - origin) / (len(slices) - 1)  # along the normal, or sheared by a gantry tilt
    else:
        step = _single_slice_step(first.ds)
        position = _floats(first.ds, "ImagePositionPatient", 3)
        origin = position if position is not None else np.zeros(3)
        slice_vector = normal * step

    lps = np.eye(4)
    lps[:3, 0] = row_dir * col_spacing  # x: along a row, one column further
    lps[:3, 1] = col_dir * row_spacing  # y: down a column, one row further
    lps[:3, 2] = slice_vector
    lps[:3, 3] = origin
    affine = _LPS_TO_RAS @ lps

    data = np.empty((len(slices), rows, columns), dtype=np.float32)
    for z, item in enumerate(slices):
        data[z] = _read_pixels(kind, where, item, rows, columns)
    ds = first.ds
    return Volume(
        data=data,
        spacing=(step, row_spacing, col_spacing),
        affine=affine,
        modality=str(ds.get("Modality", "") or ""),
        name=name,
        invert=str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1",
        sources=tuple(item.file for item in slices),
    )


def load_dicom_series(folder: PathLike, series_uid: str | None = None) -> tuple[Volume, DicomInfo]:
    """Read the DICOM series in ``folder`` (not recursive) as a :class:`Volume` and its :class:`DicomInfo`.

    Files that are not DICOM (and DICOMDIR indexes) are skipped. A folder
    holding several series is refused unless ``series_uid`` picks one.
    """
    kind = "DICOM series"
    where = _check_path(kind, folder, folder=True)
    series: dict[str, list[_Slice]] = {}
    for file in sorted(p for p in where.iterdir() if p.is_file() and not p.name.startswith(".")):
        ds = _read_header(file)
        if ds is None:
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        series.setdefault(uid, []).append(_Slice(file=file, ds=ds))
    if not series:
        raise _volume_error(kind, where, "no DICOM files in the folder")
    if series_uid is not None:
        if series_uid not in series:
            raise _volume_error(kind, where, f"no series {series_uid} in the folder (it holds {', '.join(sorted(series))})")
        chosen = series[series_uid]
    elif len(series) > 1:
        described = "; ".join(
            f"{uid or '(no SeriesInstanceUID)'}: {len(items)} file(s)"
            + (f", {items[0].ds.get('Modality')}" if items[0].ds.get("Modality") else "")
            + (f" '{items[0].ds.get('SeriesDescription')}'" if items[0].ds.get("SeriesDescription") else "")
            for uid, items in sorted(series.items())
        )
        raise _volume_error(kind, where, f"mixed series: {len(series)} series in one folder ({described})")
    else:
        chosen = next(iter(series.values()))
    volume = _build_volume(kind, where, chosen, where.name)
    return volume, _info(chosen[0].ds)


def load_dicom_file(path: PathLike) -> tuple[Volume, DicomInfo]:
    """Read one DICOM image file (a 2D slice, as CR, DX, a single CT or MR slice) as a one-slice :class:`Volume`.

    ``volume.slice(0, 0)`` is the image, in modality units (Hounsfield units for CT).
    """
    kind = "DICOM file"
    file = _check_path(kind, path, folder=False)
    ds = _read_header(file)
    if ds is None:
        raise _volume_error(kind, file, "not a DICOM image file")
    item = _Slice(file=file, ds=ds)
    if "Rows" not in ds and "Columns" not in ds:
        raise _volume_error(kind, file, "has no pixel data")
    volume = _build_volume(kind, file, [item], file.name)
    return volume, _info(ds)


def load_dicom(path: PathLike, series_uid: str | None = None) -> tuple[Volume, DicomInfo]:
    """A DICOM series (``path`` is a folder) or a single DICOM file."""
    if Path(path).is_dir():
        return load_dicom_series(path, series_uid)
    return load_dicom_file(path)


def load_volume(path: PathLike, modality: str | None = None) -> Volume:
    """Read a NIfTI file, a DICOM series folder or a DICOM file; the DICOM identification is dropped.

    ``modality`` overrides what the file says (or, for NIfTI, the guess).
    """
    target = Path(path)
    if _is_nifti(target) and not target.is_dir():
        return load_nifti(target, modality)
    volume, _ = load_dicom(target)
    if modality is not None:
        volume = Volume(
            data=volume.data,
            spacing=volume.spacing,
            affine=volume.affine,
            modality=modality,
            name=volume.name,
            invert=volume.invert,
        )
    return volume
