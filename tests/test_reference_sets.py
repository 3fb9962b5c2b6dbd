"""The reference benchmark's other sets: COCO128 object combinations and DAVIS frames (targets, references, skips)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clickmask.errors import DatasetError
from clickmask.evaluation.reference.cases import case_masks, open_cases
from clickmask.evaluation.reference.combinations import (
    Instance, InstancePair, build_combinations, combination_cases, next_pair_elsewhere, touching_pairs,
)
from clickmask.evaluation.reference.frames import frame_cases, frame_targets

H, W = 30, 60


def box(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[r0:r1, c0:c1] = True
    return m


# one image "im_a": a person and a bike 1 px apart (touch), a dog far away, a crowd and a tiny
# instance against the person (never in a pair, but the crowd is a negative of a reference)
SHAPES = {
    "m/a_0.png": box(5, 25, 0, 15),     # person
    "m/a_1.png": box(5, 25, 16, 30),    # bike, 1 px gap to the person
    "m/a_2.png": box(5, 25, 45, 60),    # dog, far
    "m/a_3.png": box(0, 5, 0, 15),      # crowd, against the person
    "m/a_4.png": box(25, 30, 5, 9),     # 20 px, against the person
}


def inst(mask: str, image: str, category: str, area: int = 300, crowd: bool = False) -> Instance:
    return Instance(mask, image, category, area, crowd)


def image_a() -> list[Instance]:
    return [inst("m/a_0.png", "im_a.jpg", "person"), inst("m/a_1.png", "im_a.jpg", "bicycle"),
            inst("m/a_2.png", "im_a.jpg", "dog"), inst("m/a_3.png", "im_a.jpg", "person", crowd=True),
            inst("m/a_4.png", "im_a.jpg", "person", area=20)]


def load(i: Instance) -> np.ndarray:
    return SHAPES[i.mask]


def test_touching_pairs_skip_far_crowd_and_tiny_instances():
    pairs = touching_pairs(image_a(), load)
    assert [(p.a.mask, p.b.mask) for p in pairs] == [("m/a_0.png", "m/a_1.png")]
    assert pairs[0].categories == ("bicycle", "person") and pairs[0].kind == "mixed"
    assert pairs[0].name == "a_0+a_1"
    # a 3 px gap: no pair at 1 px, a pair at 2 px (the default)
    shapes = {"x": box(0, 10, 0, 10), "y": box(0, 10, 13, 20)}
    two = [inst("x", "i", "cat"), inst("y", "i", "cat")]
    assert touching_pairs(two, lambda i: shapes[i.mask], touch_px=1) == []
    assert len(touching_pairs(two, lambda i: shapes[i.mask], touch_px=2)) == 1


def pair(image: str, a: str, b: str, ca: str = "person", cb: str = "bicycle") -> InstancePair:
    return InstancePair(inst(f"{image}_{a}", image, ca), inst(f"{image}_{b}", image, cb))


def test_reference_is_the_next_pair_of_the_categories_on_another_image():
    p_a1, p_a2 = pair("a", "0", "1"), pair("a", "2", "3")
    p_b, p_c = pair("b", "0", "1"), pair("c", "5", "7")
    lone = pair("a", "4", "5", "dog", "dog")
    only_here = pair("d", "0", "1", "cat", "cat"), pair("d", "2", "3", "cat", "cat")
    refs = next_pair_elsewhere([p_c, p_b, p_a2, p_a1, lone, *only_here])  # order of the list does not matter
    assert refs[p_a1.key] == p_b  # a's second pair is on the same image: passed over
    assert refs[p_a2.key] == p_b
    assert refs[p_b.key] == p_c
    assert refs[p_c.key] == p_a1  # wraps around
    assert refs[lone.key] is None  # no other dog pair
    assert refs[only_here[0].key] is None and refs[only_here[1].key] is None  # cat pairs on one image only
    # the categories are an unordered pair: bicycle+person matches person+bicycle
    swapped = pair("e", "0", "1", "bicycle", "person")
    assert next_pair_elsewhere([p_a1, swapped])[p_a1.key] == swapped


def test_combinations_negatives_and_skips():
    shapes = dict(SHAPES)
    shapes.update({"m/b_0.png": box(5, 25, 20, 35), "m/b_1.png": box(5, 25, 36, 50),  # person, bike
                   "m/b_2.png": box(5, 25, 51, 60),   # a car against the bike: a negative
                   "m/b_3.png": box(0, 3, 0, 5)})     # far: not a negative
    instances = image_a() + [inst("m/b_0.png", "im_b.jpg", "person"), inst("m/b_1.png", "im_b.jpg", "bicycle"),
                             inst("m/b_2.png", "im_b.jpg", "car"), inst("m/b_3.png", "im_b.jpg", "dog")]
    instances.append(inst("m/c_0.png", "im_c.jpg", "cat"))
    instances.append(inst("m/c_1.png", "im_c.jpg", "cat"))
    shapes.update({"m/c_0.png": box(0, 10, 0, 10), "m/c_1.png": box(0, 10, 10, 20)})
    combinations, skipped = build_combinations(instances, lambda i: shapes[i.mask])
    by_name = {c.pair.name: c for c in combinations}
    assert set(by_name) == {"a_0+a_1", "b_0+b_1"}
    assert by_name["a_0+a_1"].reference.name == "b_0+b_1"
    assert [i.mask for i in by_name["a_0+a_1"].negative] == ["m/b_2.png"]
    # im_a's crowd and tiny instances touch its person: the negatives of the pair as a reference
    assert [i.mask for i in by_name["b_0+b_1"].negative] == ["m/a_3.png", "m/a_4.png"]
    assert skipped == {"c_0+c_1": "no touching cat + cat pair on another image",  # both on im_c
                       "b_1+b_2": "no touching bicycle + car pair on another image"}


def write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((mask * 255).astype(np.uint8)).save(path)


def test_combination_cases_from_files(tmp_path):
    root = tmp_path / "Inst"
    listing = []
    for stem, image in (("a", "im_a.jpg"), ("b", "im_b.jpg")):
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(_mkdir(root / "images") / image)
        for k, (mask, cat) in enumerate(((box(5, 25, 0, 15), "person"), (box(5, 25, 16, 30), "bicycle"),
                                         (box(5, 25, 31, 40), "car"))):
            write_mask(root / "masks" / f"{stem}_{k}.png", mask)
            listing.append({"image": f"images/{image}", "mask": f"masks/{stem}_{k}.png", "category": cat,
                            "iscrowd": 0, "area": int(mask.sum())})
    (root / "instances.json").write_text(json.dumps(listing))
    cases = open_cases(root)
    assert cases.kinds == ("same", "mixed") and not cases.skipped
    # per image: person+bike, bike+car; the reference: the same pair on the other image
    names = {c.name: c for c in cases.cases}
    assert set(names) == {"a_0+a_1", "a_1+a_2", "b_0+b_1", "b_1+b_2"}
    case = names["a_0+a_1"]
    assert case.reference_image == root / "images/im_b.jpg" and case.image == root / "images/im_a.jpg"
    gt, pos, neg = case_masks(case)
    assert (gt == (box(5, 25, 0, 15) | box(5, 25, 16, 30))).all() and (pos == gt).all()
    assert (neg == box(5, 25, 31, 40)).all()  # the car touching the reference's bike
    assert combination_cases(root, touch_px=0).cases == []  # 1 px gaps: nothing touches


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_frame_targets_every_step_after_the_first():
    videos = {"b": [f"{i:05d}" for i in range(25)], "a": [f"{i:05d}" for i in reversed(range(12))]}
    assert frame_targets(videos, 10) == [("a", "00010", "00000"), ("b", "00010", "00000"), ("b", "00020", "00000")]
    assert frame_targets({"c": ["00000", "00001"]}, 10) == []
    with pytest.raises(DatasetError):
        frame_targets(videos, 0)


def test_frame_cases_from_files_skip_small_objects(tmp_path):
    root = tmp_path / "Video"
    for video, gone in (("cat", None), ("dog", 3), ("owl", 0)):
        for i in range(7):
            Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(_mkdir(root / "images" / video) / f"{i:05d}.jpg")
            mask = box(5, 25, 5 + i, 25 + i) if i != gone else box(0, 5, 0, 5)  # 25 px: under 100
            write_mask(root / "masks" / video / f"{i:05d}.png", mask)
    cases = frame_cases(root, step=3)
    assert [c.name for c in cases.cases] == ["cat/00003", "cat/00006", "dog/00006"]
    assert "in this frame" in cases.skipped["dog/00003"]
    assert "reference frame 00000" in cases.skipped["owl/00003"] and "owl/00006" in cases.skipped
    case = cases.cases[1]
    assert case.reference_image == root / "images/cat/00000.jpg" and case.kind == "frame"
    gt, pos, neg = case_masks(case)
    assert (gt == box(5, 25, 11, 31)).all() and (pos == box(5, 25, 5, 25)).all() and not neg.any()
    assert open_cases(root).protocol.startswith("frames: every 10th")


def test_open_cases_needs_a_known_layout(tmp_path):
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "images" / "x.jpg")
    with pytest.raises(DatasetError, match="parts.json"):
        open_cases(tmp_path)


# a few real files ---------------------------------------------------------------------------------------------

def test_real_davis_and_coco_sets(data_root):
    davis = data_root / "DAVIS2016_dev"
    if not (davis / "images").is_dir():
        pytest.skip(f"DAVIS2016_dev not found at {davis}")
    cases = frame_cases(davis)
    assert not cases.skipped and len(cases.cases) == 57  # 10 videos of 43-104 frames
    first = cases.cases[0]
    assert first.name == "blackswan/00010" and first.reference_image.name == "00000.jpg"
    coco = data_root / "COCO128"
    instances = json.loads((coco / "instances.json").read_text())
    # one image's instances (its pairs need no other image to be found)
    mine = [Instance(e["mask"], e["image"], e["category"], e["area"], bool(e["iscrowd"]))
            for e in instances if e["image"] == "images/000000000009.jpg"]
    pairs = touching_pairs(mine, lambda i: np.asarray(Image.open(coco / i.mask)) > 0)
    assert pairs and all(p.a.image == "images/000000000009.jpg" for p in pairs)
    assert all(p.a.area >= 100 and p.b.area >= 100 for p in pairs)


def test_eval_reference_on_a_tiny_video_dataset(model_spec, tmp_path, capsys):
    from clickmask.cli import main

    root = tmp_path / "Clips"
    for i in range(11):
        img = np.full((96, 128, 3), 30, np.uint8)
        mask = np.zeros((96, 128), bool)
        mask[30:70, 20 + 3 * i:70 + 3 * i] = True
        img[mask] = (220, 60, 40)
        Image.fromarray(img).save(_mkdir(root / "images" / "ball") / f"{i:05d}.jpg")
        write_mask(root / "masks" / "ball" / f"{i:05d}.png", mask)
    out_json = tmp_path / "clips.json"
    code = main(["eval", "--data-root", str(tmp_path), "--dataset", "Clips", "--reference", "--max-clicks", "2",
                 "--configs", "none;choose", "--json", str(out_json)])
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(out_json.read_text())
    assert report["dataset"] == "Clips" and report["targets"] == 1 and report["kinds"] == ["frame"]
    assert set(report["configs"]["choose"]["by_kind"]) == {"frame"}
    assert list(report["configs"]["choose"]["per_target"]) == ["ball/00010"]
    assert "frames: every 10th" in report["protocol"] and "frame   IoU@1" in out.out
