"""Tests for clickmask.io.datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clickmask.errors import DatasetError, ImageReadError
from clickmask.io.datasets import (
    Sample,
    check_sample_sizes,
    default_data_root,
    image_size_hw,
    load_dataset,
)


def _save_image(path: Path, h: int = 12, w: int = 16, exif_orientation: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(path.name))
    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        img.save(path, exif=exif)
    else:
        img.save(path)


def _save_mask(path: Path, mask: np.ndarray, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.where(mask, 255, 0).astype(np.uint8)
    if mode == "RGB":
        rgb = np.zeros(mask.shape + (3,), dtype=np.uint8)
        rgb[..., 1] = values  # object only in the green channel
        Image.fromarray(rgb).save(path)
    else:
        Image.fromarray(values).save(path)


def _square(h: int = 12, w: int = 16) -> np.ndarray:
    mask = np.zeros((h, w), dtype=bool)
    mask[2:8, 3:10] = True
    return mask


def _flat_dataset(root: Path, name: str = "Tiny") -> Path:
    folder = root / name
    _save_image(folder / "images" / "b.jpg")
    _save_image(folder / "images" / "a.png")
    _save_image(folder / "images" / "c.bmp")
    for stem in ("a", "b", "c"):
        _save_mask(folder / "masks" / f"{stem}.png", _square())
    ignore = np.zeros((12, 16), dtype=bool)
    ignore[0, :] = True
    _save_mask(folder / "ignore" / "b.png", ignore)
    (folder / "images" / "notes.txt").write_text("not an image")
    return folder


def test_load_flat_dataset_with_ignore(tmp_path: Path) -> None:
    folder = _flat_dataset(tmp_path)
    samples = load_dataset(tmp_path, "Tiny")
    assert [s.name for s in samples] == ["a", "b", "c"]
    assert samples[0].image_path == folder / "images" / "a.png"
    assert samples[1].image_path == folder / "images" / "b.jpg"
    assert samples[1].mask_path == folder / "masks" / "b.png"
    assert samples[0].ignore_path is None and samples[0].load_ignore() is None
    assert samples[1].ignore_path == folder / "ignore" / "b.png"
    assert all(s.category is None for s in samples)

    gt = samples[0].load_gt()
    assert gt.dtype == bool and gt.shape == (12, 16)
    np.testing.assert_array_equal(gt, _square())
    ignore = samples[1].load_ignore()
    assert ignore is not None and ignore.dtype == bool
    assert ignore[0].all() and not ignore[1:].any()
    for sample in samples:
        assert check_sample_sizes(sample) == (12, 16)


def test_limit_and_str_root(tmp_path: Path) -> None:
    _flat_dataset(tmp_path)
    assert [s.name for s in load_dataset(str(tmp_path), "Tiny", limit=2)] == ["a", "b"]
    assert load_dataset(tmp_path, "Tiny", limit=0) == []
    assert len(load_dataset(tmp_path, "Tiny", limit=10)) == 3


def test_nested_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "Video"
    for seq in ("swan", "dog"):
        for frame in ("00001", "00000"):
            _save_image(folder / "images" / seq / f"{frame}.jpg")
            _save_mask(folder / "masks" / seq / f"{frame}.png", _square())
    samples = load_dataset(tmp_path, "Video")
    assert [s.name for s in samples] == ["dog/00000", "dog/00001", "swan/00000", "swan/00001"]
    assert samples[2].mask_path == folder / "masks" / "swan" / "00000.png"


def test_instances_json_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "Coco"
    _save_image(folder / "images" / "001.jpg")
    _save_image(folder / "images" / "002.jpg")
    m0 = _square()
    m1 = np.zeros((12, 16), dtype=bool)
    m1[9:12, 0:4] = True
    _save_mask(folder / "masks" / "001_00.png", m0)
    _save_mask(folder / "masks" / "001_01.png", m1)
    _save_mask(folder / "masks" / "002_00.png", m1)
    entries = [
        {"image": "images/002.jpg", "mask": "masks/002_00.png", "category": "dog", "category_id": 18},
        {"image": "images/001.jpg", "mask": "masks/001_00.png", "category": "person", "category_id": 1},
        {"image": "images/001.jpg", "mask": "masks/001_01.png", "category": "cat", "category_id": 17},
    ]
    (folder / "instances.json").write_text(json.dumps(entries))
    samples = load_dataset(tmp_path, "Coco")
    assert [(s.name, s.category) for s in samples] == [
        ("001_00", "person"),
        ("001_01", "cat"),
        ("002_00", "dog"),
    ]
    assert samples[0].image_path == samples[1].image_path == folder / "images" / "001.jpg"
    np.testing.assert_array_equal(samples[1].load_gt(), m1)
    assert samples[0].ignore_path is None


def test_instances_json_missing_mask(tmp_path: Path) -> None:
    folder = tmp_path / "Coco"
    _save_image(folder / "images" / "001.jpg")
    entries = [{"image": "images/001.jpg", "mask": "masks/001_07.png", "category": "dog"}]
    (folder / "instances.json").write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match="001_07.png"):
        load_dataset(tmp_path, "Coco")
    (folder / "instances.json").write_text("{not json")
    with pytest.raises(DatasetError, match="instances.json"):
        load_dataset(tmp_path, "Coco")


def test_rgb_mask_uses_max_over_channels(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    _save_mask(path, _square(), mode="RGB")
    sample = Sample(name="m", image_path=tmp_path / "x.jpg", mask_path=path, ignore_path=None)
    np.testing.assert_array_equal(sample.load_gt(), _square())


def test_mask_threshold_is_above_127(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    Image.fromarray(np.array([[0, 127, 128, 255]], dtype=np.uint8)).save(path)
    sample = Sample(name="m", image_path=tmp_path / "x.jpg", mask_path=path, ignore_path=None)
    np.testing.assert_array_equal(sample.load_gt(), [[False, False, True, True]])


def test_missing_folder_names_path_and_setting(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path, "Nope")
    message = str(info.value)
    assert str(tmp_path / "Nope") in message
    assert "--data-root" in message and "CLICKMASK_DATA" in message
    assert "\n" not in message


def test_no_images(tmp_path: Path) -> None:
    (tmp_path / "Empty" / "images").mkdir(parents=True)
    (tmp_path / "Empty" / "masks").mkdir(parents=True)
    with pytest.raises(DatasetError, match="images"):
        load_dataset(tmp_path, "Empty")
    (tmp_path / "Bare").mkdir()
    with pytest.raises(DatasetError, match="Bare"):
        load_dataset(tmp_path, "Bare")


def test_image_without_mask_names_image(tmp_path: Path) -> None:
    folder = _flat_dataset(tmp_path)
    _save_image(folder / "images" / "lonely.jpg")
    with pytest.raises(DatasetError, match="lonely.jpg"):
        load_dataset(tmp_path, "Tiny")


def test_mask_without_image_names_mask(tmp_path: Path) -> None:
    folder = _flat_dataset(tmp_path)
    _save_mask(folder / "masks" / "orphan.png", _square())
    with pytest.raises(DatasetError, match="orphan.png"):
        load_dataset(tmp_path, "Tiny")


def test_ignore_without_image_names_file(tmp_path: Path) -> None:
    folder = _flat_dataset(tmp_path)
    _save_mask(folder / "ignore" / "stray.png", _square())
    with pytest.raises(DatasetError, match="stray.png"):
        load_dataset(tmp_path, "Tiny")


def test_duplicate_stem_names_both_files(tmp_path: Path) -> None:
    folder = _flat_dataset(tmp_path)
    _save_image(folder / "images" / "a.jpg")
    with pytest.raises(DatasetError, match=r"a\.jpg.*a\.png|a\.png.*a\.jpg"):
        load_dataset(tmp_path, "Tiny")


def test_size_mismatch_names_both_files(tmp_path: Path) -> None:
    folder = _flat_dataset(tmp_path)
    _save_mask(folder / "masks" / "c.png", _square(10, 16))
    sample = load_dataset(tmp_path, "Tiny")[2]
    with pytest.raises(DatasetError) as info:
        check_sample_sizes(sample)
    message = str(info.value)
    assert "c.png" in message and "c.bmp" in message
    assert "16x10" in message and "16x12" in message
    # an explicit image size is used as given
    assert check_sample_sizes(sample, (10, 16)) == (10, 16)


def test_ignore_size_mismatch(tmp_path: Path) -> None:
    folder = _flat_dataset(tmp_path)
    _save_mask(folder / "ignore" / "b.png", _square(12, 15))
    sample = load_dataset(tmp_path, "Tiny")[1]
    with pytest.raises(DatasetError, match="b.png"):
        sample.load_ignore()
    with pytest.raises(DatasetError, match="ignore"):
        check_sample_sizes(sample)


def test_exif_orientation_swaps_size(tmp_path: Path) -> None:
    plain = tmp_path / "plain.jpg"
    upright = tmp_path / "o3.jpg"
    rotated = tmp_path / "o6.jpg"
    _save_image(plain, h=12, w=16)
    _save_image(upright, h=12, w=16, exif_orientation=3)
    _save_image(rotated, h=12, w=16, exif_orientation=6)
    assert image_size_hw(plain) == (12, 16)
    assert image_size_hw(upright) == (12, 16)
    assert image_size_hw(rotated) == (16, 12)


def test_unreadable_image(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="bad.png"):
        image_size_hw(bad)
    sample = Sample(name="bad", image_path=bad, mask_path=bad, ignore_path=None)
    with pytest.raises(ImageReadError, match="bad.png"):
        sample.load_gt()


def test_default_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLICKMASK_DATA", str(tmp_path))
    assert default_data_root() == tmp_path.resolve()
    monkeypatch.delenv("CLICKMASK_DATA")
    work = tmp_path / "project"
    work.mkdir()
    monkeypatch.chdir(work)
    assert default_data_root() == (tmp_path / "shared" / "data").resolve()


@pytest.mark.data
def test_shared_grabcut(data_root: Path) -> None:
    samples = load_dataset(data_root, "GrabCut")
    assert len(samples) == 50
    assert sum(s.ignore_path is not None for s in samples) == 42
    for sample in samples:
        check_sample_sizes(sample)
    with_ignore = next(s for s in samples if s.ignore_path is not None)
    gt, ignore = with_ignore.load_gt(), with_ignore.load_ignore()
    assert ignore is not None and gt.shape == ignore.shape and gt.any() and ignore.any()


@pytest.mark.data
def test_shared_berkeley(data_root: Path) -> None:
    samples = load_dataset(data_root, "Berkeley")
    assert len(samples) == 100
    assert all(s.ignore_path is None for s in samples)
    for sample in samples:
        check_sample_sizes(sample)
    assert samples[0].load_gt().any()


# ----------------------------------------------------------------------------- instance maps


def _instance_dataset(root: Path, name: str = "Maps") -> Path:
    """Two GeoTIFF-free images with uint16 instance maps: objects of 120, 99 and 300 px, ids up to 700."""
    folder = root / name
    _save_image(folder / "images" / "t1.png", h=40, w=40)
    _save_image(folder / "images" / "t2.png", h=40, w=40)
    first = np.zeros((40, 40), dtype=np.uint16)
    first[0:10, 0:12] = 3       # 120 px
    first[20:29, 20:31] = 700   # 99 px: below the 100 px floor
    second = np.zeros((40, 40), dtype=np.uint16)
    second[10:30, 5:20] = 1     # 300 px
    (folder / "instances").mkdir(parents=True)
    Image.fromarray(first).save(folder / "instances" / "t1.png")
    Image.fromarray(second).save(folder / "instances" / "t2.png")
    return folder


def test_instance_maps_one_sample_per_object_of_100_px(tmp_path: Path) -> None:
    _instance_dataset(tmp_path)
    samples = load_dataset(tmp_path, "Maps")  # auto: no instances.json, an instances/ folder
    assert [s.name for s in samples] == ["t1#3", "t2#1"]
    assert [int(s.load_gt().sum()) for s in samples] == [120, 300]
    assert samples[0].load_gt()[0:10, 0:12].all()
    assert check_sample_sizes(samples[0]) == (40, 40)
    small = load_dataset(tmp_path, "Maps", min_area=1)
    assert [s.name for s in small] == ["t1#3", "t1#700", "t2#1"]
    assert int(small[1].load_gt().sum()) == 99


def test_instance_maps_forced_over_the_list_and_errors(tmp_path: Path) -> None:
    folder = _instance_dataset(tmp_path)
    (folder / "instances.json").write_text("[]")
    with pytest.raises(DatasetError, match="empty"):
        load_dataset(tmp_path, "Maps")  # auto prefers the list
    assert len(load_dataset(tmp_path, "Maps", layout="instance-maps")) == 2
    with pytest.raises(DatasetError, match="unknown layout"):
        load_dataset(tmp_path, "Maps", layout="nope")
    with pytest.raises(DatasetError, match="no masks/"):
        load_dataset(tmp_path, "Maps", layout="masks")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / "instances" / "t2.png")
    with pytest.raises(DatasetError, match="one channel"):
        load_dataset(tmp_path, "Maps", layout="instance-maps")
    (folder / "instances" / "t2.png").unlink()
    with pytest.raises(DatasetError, match="no instance map"):
        load_dataset(tmp_path, "Maps", layout="instance-maps")


def test_instance_maps_with_a_geotiff(tmp_path: Path) -> None:
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    from clickmask.evaluation.runner import load_sample

    folder = tmp_path / "Geo"
    (folder / "images").mkdir(parents=True)
    (folder / "instances").mkdir()
    data = np.random.default_rng(0).integers(0, 4000, (4, 32, 48), dtype=np.uint16)
    with rasterio.open(folder / "images" / "g.tif", "w", driver="GTiff", width=48, height=32, count=4,
                       dtype="uint16", crs="EPSG:32616", transform=from_origin(733600, 3725100, 0.5, 0.5)) as dst:
        dst.write(data)
    ids = np.zeros((32, 48), np.uint16)
    ids[4:20, 4:20] = 9
    Image.fromarray(ids).save(folder / "instances" / "g.png")
    (sample,) = load_dataset(tmp_path, "Geo")
    image, gt, ignore = load_sample(sample)
    assert image.shape == (32, 48, 3) and image.dtype == np.uint8
    assert gt.sum() == 256 and ignore is None


def test_eval_on_instance_maps_records_the_layout(tmp_path: Path, capsys) -> None:
    from clickmask.cli import main

    _instance_dataset(tmp_path)
    code = main(["eval", "--data-root", str(tmp_path), "--dataset", "Maps", "--layout", "instance-maps",
                 "--model", "grabcut", "--max-clicks", "2", "--json", str(tmp_path / "r.json")])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n"] == 2 and set(report["per_object"]) == {"t1#3", "t2#1"}
    assert report["options"]["layout"] == "instance-maps" and report["options"]["min_area"] == 100
