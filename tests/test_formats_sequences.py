"""Label sequences: DAVIS palette PNGs, COCO with track ids, NIfTI label volumes; round trips and bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from test_video_propagation import COLS, ROWS, FakeFrames, FakeModel, moving_square_embeddings  # noqa: E402

from clickmask.errors import ClickmaskError  # noqa: E402
from clickmask.formats.sequences import (  # noqa: E402
    davis_palette, export_coco_sequence, export_nifti_labels, export_png_sequence, import_png_sequence,
    read_png_sequence,
)
from clickmask.geometry.rle import decode_rle  # noqa: E402
from clickmask.propagation.tracks import Tracks  # noqa: E402


def label_maps(frames=3, shape=(ROWS, COLS)):
    maps = []
    for t in range(frames):
        m = np.zeros(shape, np.int32)
        m[2:8, 3 + 4 * t:12 + 4 * t] = 1
        m[9:14, 30:40] = 2 if t != 1 else 0  # track 2 absent from frame 1
        m[0, 60:] = 7
        maps.append(m)
    return maps


def test_davis_palette_starts_like_davis():
    p = davis_palette()
    assert len(p) == 768
    assert p[:12] == [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]


def test_png_sequence_round_trip(tmp_path):
    maps = label_maps()
    result = export_png_sequence(maps, tmp_path / "seq")
    assert [p.name for p in result.files] == ["00000.png", "00001.png", "00002.png"]
    with Image.open(tmp_path / "seq" / "00001.png") as img:
        assert img.mode == "P" and img.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
        assert np.array_equal(np.array(img), maps[1])
    frames, back = read_png_sequence(tmp_path / "seq")
    assert frames == [0, 1, 2] and all(b.dtype == np.uint8 for b in back)
    assert all(np.array_equal(a, b) for a, b in zip(maps, back))
    assert not list((tmp_path / "seq").glob(".*tmp*"))  # no temporary file left


def test_png_sequence_bad_input(tmp_path):
    with pytest.raises(ClickmaskError, match="track id 300 does not fit"):
        export_png_sequence([np.full((4, 4), 300, np.int32)], tmp_path / "a")
    with pytest.raises(ClickmaskError, match="frame 1 is 5x4, frame 0 is 4x4"):
        export_png_sequence([np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8)], tmp_path / "b")
    with pytest.raises(ClickmaskError, match="not a 2D integer label map"):
        export_png_sequence([np.zeros((4, 4), np.float32)], tmp_path / "c")
    with pytest.raises(ClickmaskError, match="no .png files"):
        read_png_sequence(tmp_path)
    (tmp_path / "d").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "d" / "00000.png")
    with pytest.raises(ClickmaskError, match=r"00000.png': mode RGB"):
        read_png_sequence(tmp_path / "d")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "00003.png").write_bytes(b"not a png")
    with pytest.raises(ClickmaskError, match=r"cannot read label PNG '.*00003.png'"):
        read_png_sequence(tmp_path / "e")
    (tmp_path / "f").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "f" / "cover.png")
    with pytest.raises(ClickmaskError, match="does not end in a frame number"):
        read_png_sequence(tmp_path / "f")


def test_import_png_sequence_into_tracks(tmp_path):
    embs, _ = moving_square_embeddings(frames=5)
    maps = label_maps()
    export_png_sequence(maps, tmp_path / "seq", names=["00001", "00002", "00003"])  # frames 1..3 of 5
    tracks = Tracks(FakeModel(embs), FakeFrames(5))
    present = import_png_sequence(tmp_path / "seq", tracks)
    assert present == {1: 3, 2: 2, 7: 3} and tracks.ids == [1, 2, 7]
    assert tracks[2].annotated == [1, 2, 3] and not tracks[2].states[2].mask.any()
    for k, frame in enumerate((1, 2, 3)):
        assert np.array_equal(tracks.label_map(frame), maps[k])
    assert tracks.add() == 8  # new tracks continue after the imported ids
    with pytest.raises(ClickmaskError, match=r"track ids \[1, 2, 7\] exist already"):
        import_png_sequence(tmp_path / "seq", tracks)
    with pytest.raises(ClickmaskError, match="has frame 3, the video has 3 frames"):
        import_png_sequence(tmp_path / "seq", Tracks(FakeModel(embs), FakeFrames(3)))


def test_coco_sequence_round_trip(tmp_path):
    maps = label_maps()
    out = tmp_path / "coco.json"
    export_coco_sequence(maps, out, video="squares", categories={1: "car", 7: "line"})
    data = json.loads(out.read_text())
    assert [im["frame_index"] for im in data["images"]] == [0, 1, 2]
    assert {c["name"] for c in data["categories"]} == {"car", "line", "object"}
    cats = {c["id"]: c["name"] for c in data["categories"]}
    assert len(data["annotations"]) == 8  # track 2 absent from frame 1
    mask_utils = pytest.importorskip("pycocotools.mask")
    for ann in data["annotations"]:
        frame = ann["image_id"] - 1
        expected = maps[frame] == ann["track_id"]
        ours = decode_rle(ann["segmentation"])
        theirs = mask_utils.decode({"size": ann["segmentation"]["size"],
                                    "counts": ann["segmentation"]["counts"].encode()}).astype(bool)
        assert np.array_equal(ours, expected) and np.array_equal(theirs, expected)
        assert ann["area"] == int(expected.sum())
        assert cats[ann["category_id"]] == {1: "car", 2: "object", 7: "line"}[ann["track_id"]]
    with pytest.raises(ClickmaskError, match="2 frame names for 3 frames"):
        export_coco_sequence(maps, out, names=["a.jpg", "b.jpg"])


def test_nifti_labels_keep_the_affine_and_the_labels(tmp_path):
    nib = pytest.importorskip("nibabel")
    from clickmask.io.volumes import load_labels, load_nifti

    affine = np.array([[-0.8, 0, 0, 90.0], [0, 0.8, 0, -120.0], [0, 0, 2.5, -40.0], [0, 0, 0, 1]])
    data = np.random.default_rng(0).integers(-1000, 1000, (6, 8, 5)).astype(np.int16)  # x y z
    nib.save(nib.Nifti1Image(data, affine), str(tmp_path / "vol.nii.gz"))
    volume = load_nifti(tmp_path / "vol.nii.gz")
    labels = np.zeros(volume.shape, np.int32)  # z y x
    labels[1:3, 2:6, 1:4] = 4
    labels[4, 0, 0] = 300
    export_nifti_labels(labels, volume.affine, tmp_path / "labels.nii.gz")
    back = nib.load(str(tmp_path / "labels.nii.gz"))
    assert np.allclose(back.affine, affine) and back.get_data_dtype() == np.uint16
    assert np.array_equal(np.asarray(back.dataobj).transpose(2, 1, 0), labels)
    assert np.array_equal(load_labels(tmp_path / "labels.nii.gz", volume), labels)
    export_nifti_labels(labels.clip(0, 9), volume.affine, tmp_path / "small.nii")
    assert nib.load(str(tmp_path / "small.nii")).get_data_dtype() == np.uint8
    with pytest.raises(ClickmaskError, match="must end in .nii or .nii.gz"):
        export_nifti_labels(labels, volume.affine, tmp_path / "labels.png")
    with pytest.raises(ClickmaskError, match="invertible 4x4"):
        export_nifti_labels(labels, np.zeros((4, 4)), tmp_path / "x.nii.gz")
    with pytest.raises(ClickmaskError, match="3D integer array"):
        export_nifti_labels(labels[0], volume.affine, tmp_path / "x.nii.gz")
    assert not (tmp_path / "x.nii.gz").exists()


def test_dicom_seg_one_segment_per_track_named_by_category(tmp_path):
    """Track ids 3 and 7 become segments 1 and 2, labelled with their categories, on the series' slices;
    anonymised sources (empty SOP class, study and series UIDs) still give a valid SEG; bad input is one line."""
    hd = pytest.importorskip("highdicom")
    import pydicom
    from sequence_files import write_ct_series

    from clickmask.formats.sequences import export_dicom_seg
    from clickmask.io.volumes import load_dicom_series

    truth = write_ct_series(tmp_path / "series", slices=6)
    files = load_dicom_series(tmp_path / "series")[0].sources
    for f in files[:2]:  # as the anonymised series of the Medical3D data
        ds = pydicom.dcmread(f)
        ds.SOPClassUID = ""
        ds.StudyInstanceUID = ""
        ds.save_as(f)
    labels = np.zeros(truth.shape, np.int32)
    labels[truth] = 3
    labels[:, :4, :4] = 7
    export_dicom_seg(labels, files, tmp_path / "out.dcm", {3: "kidney", 7: "marker"})
    seg = hd.seg.segread(tmp_path / "out.dcm")
    assert [(s.SegmentNumber, s.SegmentLabel) for s in seg.SegmentSequence] == [(1, "kidney"), (2, "marker")]
    uids = [pydicom.dcmread(f, stop_before_pixels=True).file_meta.MediaStorageSOPInstanceUID for f in files]
    got = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True, relabel=False,
                                            ignore_spatial_locations=True)
    assert np.array_equal(got, np.select([labels == 3, labels == 7], [1, 2], 0))
    with pytest.raises(ClickmaskError, match=r"out2\.dcm.*6 slices of labels but 5 source"):
        export_dicom_seg(labels, files[:5], tmp_path / "out2.dcm")
    with pytest.raises(ClickmaskError, match="no labelled voxel"):
        export_dicom_seg(np.zeros_like(labels), files, tmp_path / "out3.dcm")
    assert not (tmp_path / "out2.dcm").exists() and not (tmp_path / "out3.dcm").exists()
