"""Volumes: NIfTI and DICOM readers, label grids, window level/width maths."""

from __future__ import annotations

import json
import random
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
pydicom = pytest.importorskip("pydicom")

from display_files import PATIENT  # noqa: E402
from display_files import write_dicom as write_dicom_file  # noqa: E402

from clickmask.errors import ClickmaskError, VolumeReadError  # noqa: E402
from clickmask.io.volumes import (  # noqa: E402
    DicomInfo,
    Volume,
    load_dicom,
    load_dicom_file,
    load_dicom_series,
    load_labels,
    load_nifti,
    load_volume,
)
from clickmask.io.window import (  # noqa: E402
    PRESETS,
    Window,
    gray_to_rgb,
    percentile_window,
    preset,
    window_to_uint8,
)

# ----------------------------------------------------------------------------- window maths


def test_window_known_values():
    abdomen = PRESETS["ct-abdomen"]
    values = np.array([-1000.0, -160.0, 40.0, 240.0, 1000.0, -60.0, np.nan, np.inf, -np.inf])
    out = window_to_uint8(values, abdomen)
    assert out.dtype == np.uint8
    # -160 -> 0, 240 -> 255, 40 -> 127.5 -> 128 (halves to even), -60 -> 63.75 -> 64
    assert out.tolist() == [0, 0, 128, 255, 255, 64, 0, 255, 0]
    lung = preset("lung")
    assert (lung.lower, lung.upper) == (-1350.0, 150.0)
    assert window_to_uint8(np.array([-975, -1350, 150], np.int16), lung).tolist() == [64, 0, 255]
    assert window_to_uint8(np.array([[0, 80]], np.int16), preset("ct-brain")).tolist() == [[0, 255]]
    assert window_to_uint8(np.uint16(1300), preset("bone")) == np.uint8(255)


def test_presets_and_window_checks():
    assert {name: (w.level, w.width) for name, w in PRESETS.items()} == {
        "ct-abdomen": (40.0, 400.0),
        "ct-lung": (-600.0, 1500.0),
        "ct-bone": (400.0, 1800.0),
        "ct-brain": (40.0, 80.0),
    }
    with pytest.raises(ClickmaskError, match="unknown window preset 'liver'"):
        preset("liver")
    with pytest.raises(ClickmaskError, match="width must be positive"):
        Window(level=0, width=0)
    with pytest.raises(ClickmaskError, match="finite"):
        Window(level=float("nan"), width=10)


def test_percentile_window():
    values = np.arange(1001, dtype=np.float32)  # 0..1000: the 0.5 and 99.5 percentiles are 5 and 995
    window = percentile_window(values)
    assert window.lower == pytest.approx(5.0) and window.upper == pytest.approx(995.0)
    assert percentile_window(values, 0, 100) == Window(level=500.0, width=1000.0)
    spike = np.zeros(10_000)
    spike[:3] = 50.0  # percentiles coincide: min..max
    assert percentile_window(spike) == Window(level=25.0, width=50.0)
    assert percentile_window(np.full(5, 7.0)) == Window(level=7.0, width=1.0)
    assert percentile_window(np.array([np.nan])) == Window(level=0.0, width=1.0)
    with pytest.raises(ClickmaskError, match="percentiles"):
        percentile_window(values, 60, 40)


def test_gray_to_rgb():
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3)
    rgb = gray_to_rgb(gray)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert all(np.array_equal(rgb[..., c], gray) for c in range(3))


# ----------------------------------------------------------------------------- Volume


def make_volume(**kwargs) -> Volume:
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    defaults = dict(data=data, spacing=(3.0, 1.0, 0.5), affine=np.diag([0.5, 1.0, 3.0, 1.0]), modality="ct", name="v")
    defaults.update(kwargs)
    return Volume(**defaults)


def test_volume_slices_and_rgb():
    volume = make_volume()
    assert volume.data.dtype == np.float32 and volume.shape == (4, 5, 6) and volume.modality == "CT"
    assert volume.slice(0, 2).shape == (5, 6) and volume.slice(1, 4).shape == (4, 6) and volume.slice(2, 5).shape == (4, 5)
    np.testing.assert_array_equal(volume.slice(1, 3), volume.data[:, 3, :])
    assert np.shares_memory(volume.slice(2, 1), volume.data) and not volume.slice(2, 1).flags.writeable
    assert volume.slice_spacing(0) == (1.0, 0.5) and volume.slice_spacing(2) == (3.0, 1.0)
    assert volume.num_slices(0) == 4 and volume.num_slices(2) == 6
    with pytest.raises(VolumeReadError, match="out of range"):
        volume.slice(0, 4)
    with pytest.raises(VolumeReadError, match="axis"):
        volume.slice(3, 0)
    rgb = volume.slice_rgb(0, 1, Window(level=40, width=40))  # 20..60 -> 0..255
    assert rgb.shape == (5, 6, 3) and rgb.dtype == np.uint8
    expected = window_to_uint8(volume.data[1], Window(level=40, width=40))
    np.testing.assert_array_equal(rgb[..., 1], expected)
    assert volume.default_window() == preset("ct-abdomen")
    inverted = make_volume(invert=True)
    np.testing.assert_array_equal(inverted.slice_rgb(0, 1, Window(40, 40))[..., 0], 255 - expected)
    mr = make_volume(modality="MR")
    assert mr.default_window() == percentile_window(mr.data)


def test_volume_refuses_bad_geometry():
    with pytest.raises(VolumeReadError, match="3D array"):
        make_volume(data=np.zeros((4, 5)))
    with pytest.raises(VolumeReadError, match="spacing"):
        make_volume(spacing=(1.0, 0.0, 1.0))
    with pytest.raises(VolumeReadError, match="parallel"):
        make_volume(affine=np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float))
    with pytest.raises(VolumeReadError, match="zero voxel size"):
        make_volume(affine=np.diag([1.0, 1.0, 0.0, 1.0]))


# ----------------------------------------------------------------------------- NIfTI


def oblique_affine(spacing_xyz=(0.7, 0.8, 2.5), origin=(-10.0, 20.0, 5.0)) -> np.ndarray:
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing_xyz)
    affine[:3, 3] = origin
    return affine


def write_nifti(path: Path, data_xyz: np.ndarray, affine: np.ndarray, slope_inter=None) -> Path:
    img = nib.Nifti1Image(data_xyz, affine)
    if slope_inter is not None:
        img.header.set_slope_inter(*slope_inter)
    nib.save(img, str(path))
    return path


def test_nifti_round_trip(tmp_path):
    data_xyz = np.random.default_rng(0).integers(-1024, 2000, size=(7, 6, 5)).astype(np.int16)
    affine = oblique_affine()
    path = write_nifti(tmp_path / "ct.nii.gz", data_xyz, affine, slope_inter=(1.0, 0.0))
    volume = load_nifti(path)
    assert volume.shape == (5, 6, 7)
    np.testing.assert_array_equal(volume.data, data_xyz.transpose(2, 1, 0).astype(np.float32))
    assert volume.data[4, 3, 2] == data_xyz[2, 3, 4]
    np.testing.assert_allclose(volume.affine, affine, atol=1e-5)
    assert volume.spacing == pytest.approx((2.5, 0.8, 0.7), abs=1e-6)
    assert volume.modality == "CT"  # guessed: air below -500
    assert volume.name == "ct.nii.gz"
    world = volume.affine @ np.array([2, 3, 4, 1.0])  # voxel data[4, 3, 2]
    np.testing.assert_allclose(world[:3], affine[:3, :3] @ [2, 3, 4] + affine[:3, 3], atol=1e-4)
    assert load_volume(path, modality="MR").modality == "MR"


def test_nifti_scaling_and_4d(tmp_path):
    data_xyz = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    path = write_nifti(tmp_path / "scaled.nii", data_xyz, np.eye(4), slope_inter=(2.0, -10.0))
    volume = load_nifti(path)
    np.testing.assert_array_equal(volume.data, (data_xyz * 2.0 - 10.0).transpose(2, 1, 0))
    assert volume.modality == ""  # no air: unknown, windowed by percentiles
    single = write_nifti(tmp_path / "one.nii.gz", data_xyz[..., np.newaxis], np.eye(4))
    assert load_nifti(single).shape == (4, 3, 2)
    double = write_nifti(tmp_path / "two.nii.gz", np.stack([data_xyz, data_xyz], axis=-1), np.eye(4))
    with pytest.raises(VolumeReadError, match=r"two.nii.gz.*expected a 3D volume"):
        load_nifti(double)


def _patch_sform(path: Path, rows) -> None:
    """Make the file's affine come from an sform with these three rows (uncompressed NIfTI-1).

    nibabel refuses to write such an affine itself.
    """
    raw = bytearray(path.read_bytes())
    struct.pack_into("<hh", raw, 252, 0, 1)  # qform_code 0, sform_code 1
    for offset, row in zip((280, 296, 312), rows, strict=True):  # srow_x, srow_y, srow_z
        struct.pack_into("<4f", raw, offset, *row)
    path.write_bytes(bytes(raw))


def test_nifti_invalid_affine(tmp_path):
    path = write_nifti(tmp_path / "flat.nii", np.zeros((3, 3, 3), np.int16), np.eye(4))
    x_row, y_row = (1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0)
    _patch_sform(path, (x_row, y_row, (0.0, 0.0, 0.0, 0.0)))
    with pytest.raises(VolumeReadError, match=r"flat.nii.*invalid affine \(zero voxel size along z\)"):
        load_nifti(path)
    _patch_sform(path, (x_row, y_row, (0.0, 0.0, float("nan"), 0.0)))
    with pytest.raises(VolumeReadError, match=r"flat.nii.*invalid affine.*NaN"):
        load_nifti(path)
    _patch_sform(path, ((1.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 1.0, 0.0)))  # x, y axes parallel
    with pytest.raises(VolumeReadError, match="parallel"):
        load_nifti(path)


def test_nifti_unreadable(tmp_path):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b" + b"not really gzip" * 10)
    with pytest.raises(VolumeReadError, match=r"cannot read NIfTI volume '.*broken.nii.gz'"):
        load_nifti(broken)
    noise = np.random.default_rng(5).integers(0, 4000, size=(20, 20, 20)).astype(np.int16)
    good = write_nifti(tmp_path / "good.nii.gz", noise, np.eye(4))
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(VolumeReadError, match="truncated.nii.gz"):
        load_nifti(truncated)
    with pytest.raises(VolumeReadError, match="not found"):
        load_nifti(tmp_path / "missing.nii")


# ----------------------------------------------------------------------------- label grids


def test_labels_on_the_same_grid(tmp_path):
    affine = oblique_affine()
    image = write_nifti(tmp_path / "img.nii.gz", np.zeros((7, 6, 5), np.int16), affine)
    labels_xyz = np.random.default_rng(1).integers(0, 4, size=(7, 6, 5)).astype(np.uint8)
    label = write_nifti(tmp_path / "lab.nii.gz", labels_xyz, affine)
    volume = load_nifti(image)
    aligned = load_labels(label, volume)
    assert aligned.dtype == np.uint8 and aligned.shape == volume.shape
    np.testing.assert_array_equal(aligned, labels_xyz.transpose(2, 1, 0))


def test_labels_with_flipped_and_permuted_axes_are_reordered(tmp_path):
    affine = oblique_affine()
    volume = load_nifti(write_nifti(tmp_path / "img.nii.gz", np.zeros((7, 6, 5), np.int16), affine))
    labels_xyz = np.random.default_rng(2).integers(0, 9, size=(7, 6, 5)).astype(np.int16)
    # the same grid stored with y reversed and x / z swapped: label voxel (a, b, c) = volume voxel (c, 5 - b, a)
    stored = np.flip(labels_xyz, axis=1).transpose(2, 1, 0)
    index_map = np.array([[0, 0, 1, 0], [0, -1, 0, 5], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    label = write_nifti(tmp_path / "lab.nii.gz", stored, affine @ index_map)
    np.testing.assert_array_equal(load_labels(label, volume), labels_xyz.transpose(2, 1, 0))


def test_labels_on_another_grid_are_refused(tmp_path):
    affine = oblique_affine()
    volume = load_nifti(write_nifti(tmp_path / "img.nii.gz", np.zeros((7, 6, 5), np.int16), affine))
    shifted = affine.copy()
    shifted[:3, 3] += affine[:3, 2]  # one slice further
    cases = {
        "shifted.nii.gz": (np.zeros((7, 6, 5), np.uint8), shifted),
        "smaller.nii.gz": (np.zeros((7, 6, 4), np.uint8), affine),
        "coarser.nii.gz": (np.zeros((7, 6, 5), np.uint8), affine @ np.diag([2.0, 1, 1, 1])),
    }
    for name, (data, grid) in cases.items():
        path = write_nifti(tmp_path / name, data, grid)
        with pytest.raises(VolumeReadError, match=rf"label volume '.*{name}' does not lie on the grid of 'img.nii.gz'"):
            load_labels(path, volume)
    floats = write_nifti(tmp_path / "floats.nii.gz", np.full((7, 6, 5), 0.5, np.float32), affine)
    with pytest.raises(VolumeReadError, match="whole numbers"):
        load_labels(floats, volume)
    whole = write_nifti(tmp_path / "whole.nii.gz", np.full((7, 6, 5), 3.0, np.float32), affine)
    assert load_labels(whole, volume).dtype == np.int32


# ----------------------------------------------------------------------------- DICOM

ROWS, COLS = 6, 5
ROW_SPACING, COL_SPACING = 0.8, 0.7
SLOPE, INTERCEPT = 2.0, -1024.0
STEP = 2.5


def oblique_orientation() -> tuple[list[float], list[float]]:
    angle = np.deg2rad(30)
    return [1.0, 0.0, 0.0], [0.0, float(np.cos(angle)), float(-np.sin(angle))]


def raw_slice(k: int) -> np.ndarray:
    """Stored values of the slice at position ``k`` along the normal: the slice number is in every pixel."""
    base = np.arange(ROWS * COLS, dtype=np.uint16).reshape(ROWS, COLS)
    return (base + 100 * k + 600).astype(np.uint16)


def write_dicom(
    path: Path,
    pixels: np.ndarray | None,
    position,
    orientation,
    series_uid: str,
    instance: int,
    study_uid: str = "1.2.3.4",
    photometric: str = "MONOCHROME2",
) -> Path:
    """A slice of a CT series at ``position`` with ``orientation`` (row and column direction cosines)."""
    return write_dicom_file(
        path, pixels, photometric, PatientBirthDate="19700101", StudyInstanceUID=study_uid,
        SeriesInstanceUID=series_uid, SeriesDescription="abdomen", InstanceNumber=instance,
        ImagePositionPatient=[float(v) for v in position],
        ImageOrientationPatient=[float(v) for v in orientation[0] + orientation[1]],
        PixelSpacing=[ROW_SPACING, COL_SPACING], SliceThickness=STEP, RescaleSlope=SLOPE,
        RescaleIntercept=INTERCEPT)


def write_series(folder: Path, count: int = 6, series_uid: str = "1.2.3.4.5") -> dict:
    """A CT series with an oblique orientation, files named and numbered in shuffled order."""
    folder.mkdir(parents=True, exist_ok=True)
    orientation = oblique_orientation()
    normal = np.cross(orientation[0], orientation[1])
    origin = np.array([-40.0, 25.0, 100.0])
    order = list(range(count))
    random.Random(3).shuffle(order)
    files = {}
    for n, k in enumerate(order):
        position = origin + k * STEP * normal
        name = f"img{n:03d}.dcm"
        # InstanceNumber runs against the position: the reader must not trust it
        write_dicom(folder / name, raw_slice(k), position, orientation, series_uid, instance=count - k)
        files[k] = name
    return {"origin": origin, "normal": normal, "orientation": orientation, "files": files}


def test_dicom_series_order_hu_spacing_affine(tmp_path):
    folder = tmp_path / "series"
    layout = write_series(folder)
    volume, info = load_dicom_series(folder)
    assert volume.shape == (6, ROWS, COLS) and volume.data.dtype == np.float32
    for k in range(6):  # slice k is the k-th along the normal, in Hounsfield units
        np.testing.assert_array_equal(volume.data[k], raw_slice(k).astype(np.float64) * SLOPE + INTERCEPT)
    assert volume.data.min() == 600 * SLOPE + INTERCEPT
    assert volume.spacing == pytest.approx((STEP, ROW_SPACING, COL_SPACING))
    assert volume.modality == "CT" and volume.name == "series"
    row_dir, col_dir = (np.array(v) for v in layout["orientation"])
    lps_to_ras = np.array([-1.0, -1.0, 1.0])
    for x, y, z in [(0, 0, 0), (4, 0, 0), (0, 5, 0), (3, 2, 5)]:
        lps = layout["origin"] + x * COL_SPACING * row_dir + y * ROW_SPACING * col_dir + z * STEP * layout["normal"]
        np.testing.assert_allclose((volume.affine @ [x, y, z, 1.0])[:3], lps * lps_to_ras, atol=1e-6)
    # identification is kept apart from the volume, and out of repr
    assert isinstance(info, DicomInfo)
    assert info.patient_name == PATIENT and info.patient_id == "P-0042" and info.series_instance_uid == "1.2.3.4.5"
    assert info.study_date == "20260101" and info.modality == "CT"
    assert PATIENT not in repr(info) and "P-0042" not in repr(info)
    assert not any(PATIENT in str(value) for value in vars(volume).values() if isinstance(value, str))
    assert info.as_dict()["patient_name"] == PATIENT
    assert load_volume(folder).shape == volume.shape
    assert load_dicom(folder)[0].shape == volume.shape


def test_dicom_series_duplicate_slice(tmp_path):
    folder = tmp_path / "dup"
    layout = write_series(folder)
    shutil.copy(folder / layout["files"][2], folder / "zz_copy.dcm")
    with pytest.raises(VolumeReadError) as info:
        load_dicom_series(folder)
    message = str(info.value)
    assert f"'{folder}'" in message and "duplicated slice" in message
    assert layout["files"][2] in message and "zz_copy.dcm" in message


def test_dicom_series_missing_slice(tmp_path):
    folder = tmp_path / "gap"
    layout = write_series(folder, count=8)
    (folder / layout["files"][4]).unlink()
    with pytest.raises(VolumeReadError, match=rf"'{folder}'.*missing slice\(s\).*about 1 slice") as info:
        load_dicom_series(folder)
    assert layout["files"][3] in str(info.value) and layout["files"][5] in str(info.value)


def test_dicom_series_irregular_spacing(tmp_path):
    folder = tmp_path / "irregular"
    folder.mkdir()
    orientation = ([1.0, 0, 0], [0, 1.0, 0])
    for n, z in enumerate([0.0, 2.0, 4.0, 6.6, 8.6]):
        write_dicom(folder / f"s{n}.dcm", raw_slice(n), [0, 0, z], orientation, "9.9", n)
    with pytest.raises(VolumeReadError, match="irregular slice spacing"):
        load_dicom_series(folder)


def test_dicom_mixed_series(tmp_path):
    folder = tmp_path / "mixed"
    write_series(folder, count=4, series_uid="1.1.1")
    orientation = oblique_orientation()
    write_dicom(folder / "other.dcm", raw_slice(0), [0, 0, 0], orientation, "2.2.2", 1)
    (folder / "README.txt").write_text("not DICOM: skipped")
    with pytest.raises(VolumeReadError, match=rf"'{folder}'.*mixed series: 2 series.*1\.1\.1: 4 file.*2\.2\.2: 1 file"):
        load_dicom_series(folder)
    volume, info = load_dicom_series(folder, series_uid="1.1.1")
    assert volume.shape == (4, ROWS, COLS) and info.series_instance_uid == "1.1.1"
    with pytest.raises(VolumeReadError, match="no series 3.3.3"):
        load_dicom_series(folder, series_uid="3.3.3")


def test_dicom_series_other_errors(tmp_path):
    folder = tmp_path / "sizes"
    write_series(folder, count=3)
    orientation = oblique_orientation()
    write_dicom(folder / "big.dcm", np.zeros((8, 8), np.uint16), [0, 0, 50], orientation, "1.2.3.4.5", 9)
    with pytest.raises(VolumeReadError, match=r"slices of different sizes.*big.dcm is 8x8"):
        load_dicom_series(folder)
    nopixels = tmp_path / "nopixels"
    layout = write_series(nopixels, count=3)
    target = nopixels / layout["files"][1]
    ds = pydicom.dcmread(str(target))
    del ds.PixelData  # the header still says Rows x Columns
    ds.save_as(str(target), enforce_file_format=True)
    with pytest.raises(VolumeReadError, match=rf"'{nopixels}'.*{layout['files'][1]} has no pixel data"):
        load_dicom_series(nopixels)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing here")
    with pytest.raises(VolumeReadError, match="no DICOM files"):
        load_dicom_series(empty)


def test_single_dicom_file(tmp_path):
    orientation = ([1.0, 0, 0], [0, 1.0, 0])
    path = write_dicom(tmp_path / "slice.dcm", raw_slice(3), [10, 20, 30], orientation, "7.7", 1)
    volume, info = load_dicom_file(path)
    assert volume.shape == (1, ROWS, COLS)
    np.testing.assert_array_equal(volume.slice(0, 0), raw_slice(3) * SLOPE + INTERCEPT)
    assert volume.spacing == pytest.approx((STEP, ROW_SPACING, COL_SPACING))
    np.testing.assert_allclose(volume.affine[:3, 3], [-10, -20, 30])
    assert info.patient_name == PATIENT and PATIENT not in repr(info)
    rgb = volume.slice_rgb(0, 0)  # CT: the abdomen window
    assert rgb.shape == (ROWS, COLS, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 0], window_to_uint8(volume.slice(0, 0), preset("ct-abdomen")))
    assert load_volume(path).shape == (1, ROWS, COLS)
    mono1 = write_dicom(tmp_path / "mono1.dcm", raw_slice(3), [0, 0, 0], orientation, "7.8", 1, photometric="MONOCHROME1")
    assert load_dicom_file(mono1)[0].invert


def test_single_dicom_file_without_geometry(tmp_path):
    """A radiograph-like file: no position, orientation or pixel spacing; an identity grid is assumed."""
    path = write_dicom(tmp_path / "xray.dcm", raw_slice(0), [0, 0, 0], ([1.0, 0, 0], [0, 1.0, 0]), "7.9", 1)
    ds = pydicom.dcmread(str(path))
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness"):
        delattr(ds, keyword)
    ds.save_as(str(path), enforce_file_format=True)
    volume, _ = load_dicom_file(path)
    assert volume.shape == (1, ROWS, COLS) and volume.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(volume.affine, np.diag([-1.0, -1.0, 1.0, 1.0]))
    np.testing.assert_array_equal(volume.slice(0, 0), raw_slice(0) * SLOPE + INTERCEPT)


def test_load_volume_names_the_missing_file(tmp_path):
    with pytest.raises(VolumeReadError, match=r"cannot read NIfTI volume '.*gone.nii.gz': not found"):
        load_volume(tmp_path / "gone.nii.gz")
    with pytest.raises(VolumeReadError, match=r"cannot read DICOM file '.*gone.dcm': not found"):
        load_volume(tmp_path / "gone.dcm")


def test_dicom_file_without_pixel_data(tmp_path):
    orientation = ([1.0, 0, 0], [0, 1.0, 0])
    path = write_dicom(tmp_path / "header_only.dcm", None, [0, 0, 0], orientation, "7.7", 1)
    with pytest.raises(VolumeReadError) as info:
        load_dicom_file(path)
    assert str(info.value) == f"cannot read DICOM file '{path}': has no pixel data"
    not_dicom = tmp_path / "plain.dcm"
    not_dicom.write_bytes(b"\x00" * 300)
    with pytest.raises(VolumeReadError, match="not a DICOM image file"):
        load_dicom_file(not_dicom)


# ----------------------------------------------------------------------------- the real data


@pytest.mark.data
def test_medical3d_volumes_and_labels(data_root):
    root = data_root / "Medical3D"
    if not root.is_dir():
        pytest.skip("Medical3D not in the data root")
    names = json.loads((root / "labels.json").read_text())
    for case in ("totalseg_example_ct", "totalseg_example_mr"):
        volume = load_nifti(root / "volumes" / f"{case}.nii.gz")
        labels = load_labels(root / "labels" / f"{case}.nii.gz", volume)
        assert labels.shape == volume.shape == tuple(names[case]["shape"][::-1])
        assert volume.spacing == pytest.approx(tuple(names[case]["spacing_mm"][::-1]))
        counts = np.bincount(labels.ravel())
        for value, entry in names[case]["labels"].items():
            assert counts[int(value)] == entry["voxels"]
        assert volume.slice_rgb(0, volume.shape[0] // 2).shape == (volume.shape[1], volume.shape[2], 3)
    assert load_nifti(root / "volumes" / "totalseg_example_ct.nii.gz").modality == "CT"

    series = root / "dicom" / "totalseg_example_ct_dicom"
    volume, info = load_dicom_series(series)
    assert volume.shape == (20, 512, 512) and volume.modality == "CT"
    assert volume.spacing == pytest.approx((2.0, 0.9765625, 0.9765625))
    assert volume.data.min() == pytest.approx(-1024.0)  # air outside the body, in Hounsfield units
    z_world = (volume.affine @ np.array([[0, 0, z, 1.0] for z in range(20)]).T)[2]
    assert np.all(np.diff(z_world) == pytest.approx(2.0))  # ordered along the normal
    labels = load_labels(root / "labels" / "totalseg_example_ct_dicom.nii.gz", volume)
    assert labels.shape == volume.shape
    liver = volume.data[labels == 5]  # labels.json: 5 = liver; soft tissue, not air or bone
    assert liver.size > 1000 and 0 < float(np.median(liver)) < 200
    assert float(np.median(volume.data[labels == 0])) < -500  # background is mostly air
    with pytest.raises(VolumeReadError, match="does not lie on the grid"):
        load_labels(root / "labels" / "totalseg_example_ct.nii.gz", volume)
