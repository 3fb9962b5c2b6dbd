"""Reference-guided segmentation: the prototype maths, the candidate choice, the pairing rule, one real image."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clickmask.engine.clicks import Click
from clickmask.errors import ClickmaskError, DatasetError
from clickmask.evaluation.reference.pairs import (
    PartEntry, build_targets, group_samples, next_of_category, read_listing, touching,
)
from clickmask.learning.reference import (
    Reference, ReferenceUses, auto_points, candidate_scores, cell_weights, choose_candidate, kmeans, pool,
    prior_low_res, similarity,
)

G = 8  # a small grid: the maths does not depend on 64x64
SIDE = 128  # encoder frame of the small grid (16 px per cell, as the real model)


def embedding_with(regions: list[tuple[slice, slice, np.ndarray]], base: np.ndarray, c: int = 4) -> np.ndarray:
    """A 1xCxGxG embedding: ``base`` everywhere, another vector in each region (rows, cols, vector), in order."""
    emb = np.broadcast_to(base.reshape(c, 1, 1), (c, G, G)).copy()
    for rows, cols, vec in regions:
        emb[:, rows, cols] = vec.reshape(c, 1, 1)
    return emb[None].astype(np.float32)


E = np.eye(4, dtype=np.float32)


def test_pool_is_the_weighted_unit_mean():
    emb = embedding_with([(slice(0, 4), slice(0, 8), 3 * E[0])], E[1])
    weights = np.zeros((G, G), np.float32)
    weights[0, 0] = 1.0  # an E[0] cell
    weights[7, 7] = 1.0  # an E[1] cell
    feat = pool(emb, weights)
    expected = (3 * E[0] + E[1]) / np.linalg.norm(3 * E[0] + E[1])
    np.testing.assert_allclose(feat, expected, atol=1e-6)
    assert pool(emb, np.zeros((G, G))) is None
    with pytest.raises(ClickmaskError):
        pool(emb, np.ones((3, 3)))


def test_cell_weights_and_reference_from_masks():
    # a 128x128 image on a 128 side frame: one cell = 16x16 pixels
    emb = embedding_with([(slice(0, 2), slice(0, 2), E[0]), (slice(2, 4), slice(0, 2), E[2])], E[1])
    positive = np.zeros((128, 128), bool)
    positive[:32, :32] = True  # the 2x2 E[0] cells
    negative = np.zeros((128, 128), bool)
    negative[32:64, :32] = True  # the 2x2 E[2] cells
    w = cell_weights(positive, (128, 128), G, SIDE)
    assert w[:2, :2].min() == pytest.approx(1.0) and w.sum() == pytest.approx(4.0)
    ref = Reference.from_masks(emb, (128, 128), positive, negative, side=SIDE)
    np.testing.assert_allclose(ref.positive, E[0], atol=1e-6)
    np.testing.assert_allclose(ref.negative, E[2], atol=1e-6)
    assert ref.positive_only().negative is None
    assert Reference.from_masks(emb, (128, 128), positive, np.zeros_like(negative), side=SIDE).negative is None
    with pytest.raises(ClickmaskError):
        Reference.from_masks(emb, (128, 128), np.zeros_like(positive), side=SIDE)


def test_similarity_maps_are_cosines():
    emb = embedding_with([(slice(0, 4), slice(0, 8), 2 * E[0] + 2 * E[1])], E[1])
    sim = similarity(emb, E[0])
    assert sim.shape == (G, G)
    np.testing.assert_allclose(sim[:4], 1 / np.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(sim[4:], 0.0, atol=1e-6)
    both = similarity(emb, np.stack([E[0], E[1]]))
    assert both.shape == (2, G, G)
    np.testing.assert_allclose(both[1, 4:], 1.0, atol=1e-6)
    pos, neg = Reference(E[0], E[1]).maps(emb)
    np.testing.assert_allclose(pos, sim, atol=1e-6)
    np.testing.assert_allclose(neg, both[1], atol=1e-6)


def test_local_prototypes_split_two_looks():
    pts = np.concatenate([np.tile(E[0], (5, 1)), np.tile(E[3], (3, 1))]) + 0.01
    centres = kmeans(pts, 2)
    best = sorted(int(np.argmax(c)) for c in centres)
    assert best == [0, 3]
    # the positive map takes the best of the global and local prototypes
    emb = embedding_with([(slice(0, 4), slice(0, 8), E[3])], E[0])
    ref = Reference(E[0], None, np.stack([E[3]]))
    pos, _ = ref.maps(emb)
    np.testing.assert_allclose(pos, 1.0, atol=1e-6)


def square_logits(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """256x256 low-res logits positive on grid rows r0:r1, cols c0:c1 (a grid cell of G = 8 is 32 low-res px)."""
    out = np.full((256, 256), -5.0, np.float32)
    out[r0 * 32:r1 * 32, c0 * 32:c1 * 32] = 5.0
    return out


def test_candidate_choice_part_versus_whole():
    # object: rows 0-3 of the grid; its "head" (E[0]) is the top-left 2x2, the "body" (E[2]) the rest
    emb = embedding_with([(slice(0, 4), slice(0, 4), E[2]), (slice(0, 2), slice(0, 2), E[0])], E[1])
    head = square_logits(0, 2, 0, 2)
    whole = square_logits(0, 4, 0, 4)
    too_big = square_logits(0, 8, 0, 8)
    candidates = np.stack([whole, head, whole, too_big])
    part_ref = Reference(E[0], E[2])
    scores = candidate_scores(part_ref, emb, candidates)
    assert scores[1] > max(scores[2], scores[3])
    assert choose_candidate(part_ref, emb, candidates) == 1
    whole_ref = Reference(np.float32([0, 0, 1, 0]) + 0.3 * E[0])
    whole_ref = Reference(whole_ref.positive / np.linalg.norm(whole_ref.positive))
    assert choose_candidate(whole_ref, emb, candidates) == 2
    # token 0 is left out unless asked for; an empty candidate never wins
    empty = np.full((256, 256), -5.0, np.float32)
    assert candidate_scores(part_ref, emb, np.stack([empty, head]))[0] == -np.inf
    assert choose_candidate(part_ref, emb, candidates, tokens=[3, 1]) == 1
    assert choose_candidate(part_ref, emb, candidates, tokens=[0, 2]) in (0, 2)


def test_prior_and_automatic_points_stay_around_the_click():
    emb = embedding_with([(slice(0, 4), slice(0, 4), E[2]), (slice(0, 2), slice(0, 2), E[0]), (slice(6, 8), slice(6, 8), E[0])], E[1])
    ref = Reference(E[0], E[2])
    click = Click(8.0, 8.0, True)  # in cell (0, 0), on the "head"
    prior = prior_low_res(ref, emb, (128, 128), click, side=SIDE)
    assert prior.shape == (256, 256)
    assert prior[16, 16] > 0 and prior[48, 48] > 0  # the head cells around the click
    assert prior[100, 100] < 0  # the body
    assert prior[240, 240] < 0  # the other head-like region, not connected to the click
    region = np.zeros((G, G), bool)
    region[:4, :4] = True
    points = auto_points(ref, emb, (128, 128), click, region, side=SIDE)
    assert points and all(not p.positive for p in points)
    cells = {(int(p.y // 16), int(p.x // 16)) for p in points}
    assert all(r < 4 and c < 4 and (r >= 2 or c >= 2) for r, c in cells)  # on the body, inside the region
    assert auto_points(ref.positive_only(), emb, (128, 128), click, region, side=SIDE) == []


def test_uses_parse_and_text():
    uses = ReferenceUses.parse("choose,points,positive_only")
    assert (uses.choose, uses.prior, uses.points, uses.negative) == (True, False, True, False)
    assert ReferenceUses.parse(uses.text()) == uses
    assert ReferenceUses.parse("none").text() == "none"
    with pytest.raises(ClickmaskError):
        ReferenceUses.parse("choose,magic")


# the pairing rule -------------------------------------------------------------------------------------------

def fake_listing() -> list[PartEntry]:
    """Three cats (b, a, c: listed out of order), one dog; masks are named after what they hold."""
    out = []
    for image, obj, cat, parts in [("img_b.jpg", 1, "cat", ["head", "torso", "tail", "eye"]),
                                   ("img_a.jpg", 2, "cat", ["head", "torso"]),
                                   ("img_a.jpg", 1, "dog", ["head"]),
                                   ("img_c.jpg", 1, "cat", ["head", "torso", "tail"])]:
        out.append(PartEntry(f"{image}-{obj}-object", image, obj, cat, "object", 5000))
        for p in parts:
            out.append(PartEntry(f"{image}-{obj}-{p}", image, obj, cat, p, 50 if p == "eye" else 1000))
    return out


def fake_mask(entry: PartEntry) -> np.ndarray:
    """head, torso, tail in a row: head and torso 1 px apart, torso and tail 2 px apart (both touch), head and tail far."""
    m = np.zeros((20, 40), bool)
    cols = {"head": (0, 10), "torso": (11, 25), "tail": (27, 40), "eye": (2, 4), "object": (0, 40)}
    c0, c1 = cols[entry.part]
    m[5:15, c0:c1] = True
    return m


def test_next_sample_in_lexicographic_order_wraps_around():
    samples = group_samples(fake_listing())
    assert [s.key for s in samples] == [("img_a.jpg", 1), ("img_a.jpg", 2), ("img_b.jpg", 1), ("img_c.jpg", 1)]
    refs = next_of_category(samples)
    assert refs[("img_a.jpg", 2)].key == ("img_b.jpg", 1)
    assert refs[("img_b.jpg", 1)].key == ("img_c.jpg", 1)
    assert refs[("img_c.jpg", 1)].key == ("img_a.jpg", 2)  # wraps around
    assert refs[("img_a.jpg", 1)] is None  # the only dog


def test_targets_parts_touching_pairs_whole_and_skips():
    pairing = build_targets(group_samples(fake_listing()), fake_mask)
    names = {t.name for t in pairing.targets}
    # img_b (head, torso, tail; the 50 px eye is not a target) -> reference img_c, which has them all
    assert {"img_b_o1:head", "img_b_o1:torso", "img_b_o1:tail", "img_b_o1:head+torso", "img_b_o1:tail+torso",
            "img_b_o1:object"} <= names
    assert "img_b_o1:head+tail" not in names and "img_b_o1:eye" not in names  # not touching; too small
    # img_c -> reference img_a_o2, which lacks the tail: tail targets are skipped and counted
    assert "img_c_o1:head+torso" in names and "img_c_o1:object" in names
    assert set(pairing.skipped) >= {"img_c_o1:tail", "img_c_o1:tail+torso"}
    assert "lacks tail" in pairing.skipped["img_c_o1:tail"]
    # the only dog has no reference
    assert pairing.skipped["img_a_o1:head"] == "no other sample of the category"
    kinds = {t.name: t.kind for t in pairing.targets}
    assert kinds["img_b_o1:object"] == "object" and kinds["img_b_o1:head+torso"] == "pair"
    ref = next(t for t in pairing.targets if t.name == "img_b_o1:head").reference
    assert ref.key == ("img_c.jpg", 1)


def test_touching_uses_a_small_dilation():
    a = np.zeros((10, 20), bool)
    b = np.zeros((10, 20), bool)
    a[:, :5] = True
    b[:, 8:] = True  # a 3 px gap
    assert not touching(a, b, 1)
    assert touching(a, b, 2)


def test_read_listing(tmp_path):
    path = tmp_path / "parts.json"
    path.write_text(json.dumps([{"mask": "m.png", "image": "i.jpg", "object": 1, "category": "cat",
                                 "part": "head", "area": 120, "source": "x"}]))
    assert read_listing(path)[0].part == "head"
    path.write_text("[{}]")
    with pytest.raises(DatasetError):
        read_listing(path)


# the real model ----------------------------------------------------------------------------------------------

def test_part_reference_beats_no_reference_on_a_real_part(sam_predictor, data_root):
    """PascalPart 2009_001103: bottle 5's body with bottle 6's body as the reference (its cap negative)."""
    from clickmask.engine.refine import RECOMMENDED, InferenceOptions, RefinedPredictor
    from clickmask.evaluation.clicker import Clicker
    from clickmask.evaluation.reference.pairs import load_mask, target_masks
    from clickmask.geometry.masks import iou
    from clickmask.io.images import load_image
    from clickmask.learning.reference import ReferencePredictor

    root = data_root / "PascalPart"
    if not (root / "parts.json").is_file():
        pytest.skip(f"PascalPart not found at {root}")
    pairing = build_targets(group_samples(read_listing(root / "parts.json")), lambda e: load_mask(root, e))
    target = next(t for t in pairing.targets if t.name == "2009_001103_o5:body")
    assert target.reference.name == "2009_001103_o6"
    gt, pos, neg = target_masks(root, target)
    image = load_image(root / "images" / target.sample.image)
    predictor = ReferencePredictor(RefinedPredictor(sam_predictor, InferenceOptions.parse(RECOMMENDED)))
    reference = predictor.reference_of(image, pos, neg)
    predictor.set_image(image)
    click = Clicker(gt).make_next_click(np.zeros_like(gt))
    without = iou(gt, predictor.predict([click]).mask)
    predictor.set_reference(reference, ReferenceUses.parse("choose"))
    pred = predictor.predict([click])
    with_ref = iou(gt, pred.mask)
    assert with_ref > without + 0.1
    assert pred.info["reference"]["token"] == pred.info["first_token"]
    assert len(pred.candidates) == 3  # the other readings stay available (Tab)
    predictor.set_reference(None)
    assert iou(gt, predictor.predict([click]).mask) == pytest.approx(without)


# the command ----------------------------------------------------------------------------------------------------

def _run(capsys, *argv):
    from clickmask.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _part_dataset(root, n: int = 2):
    """A tiny part dataset: n images of one 'toy' object, a red head touching a blue torso."""
    from PIL import Image

    folder = root / "Parts"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    listing = []
    for i in range(n):
        img = np.full((120, 160, 3), 40, np.uint8)
        head = np.zeros((120, 160), bool)
        torso = np.zeros((120, 160), bool)
        head[30:60, 40 + 5 * i:70 + 5 * i] = True
        torso[60:100, 30 + 5 * i:110 + 5 * i] = True
        img[head] = (200, 40, 40)
        img[torso] = (40, 40, 200)
        Image.fromarray(img).save(folder / "images" / f"im{i}.jpg")
        for part, mask in (("object", head | torso), ("head", head), ("torso", torso)):
            name = f"im{i}_o1-{part}.png"
            Image.fromarray((mask * 255).astype(np.uint8)).save(folder / "masks" / name)
            listing.append({"mask": name, "image": f"im{i}.jpg", "object": 1, "category": "toy", "part": part,
                            "area": int(mask.sum())})
    (folder / "parts.json").write_text(json.dumps(listing))
    return folder


def test_reference_options_need_reference(tmp_path, capsys):
    code, _, err = _run(capsys, "eval", "--data-root", str(tmp_path), "--dataset", "Parts", "--configs", "none")
    assert code == 2 and "need --reference" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "eval", "--data-root", str(tmp_path), "--dataset", "Parts", "--reference",
                        "--configs", "x:choose,magic")
    assert code == 2 and "magic" in err


def test_eval_reference_on_a_tiny_part_dataset(model_spec, tmp_path, capsys):
    _part_dataset(tmp_path)
    out_json = tmp_path / "ref.json"
    code, out, err = _run(capsys, "eval", "--data-root", str(tmp_path), "--dataset", "Parts", "--reference",
                          "--max-clicks", "2", "--configs", "none;choose;all", "--json", str(out_json))
    assert code == 0, err
    report = json.loads(out_json.read_text())
    # per image: head, torso, head+torso (touching), the whole object; each has the other image as reference
    assert report["targets"] == 8 and report["skipped"] == 0
    assert set(report["configs"]) == {"none", "choose", "all"}
    entry = report["configs"]["choose"]
    assert entry["n"] == 8 and entry["n_noc"] == 8 and set(entry["noc"]) == {"80", "85", "90"}
    assert 0.0 <= entry["iou1"] <= 1.0 and "iou1_points" in entry["vs_none"]
    assert set(entry["by_kind"]) == {"part", "pair", "object"}
    assert "NoC@85" in out and "choose" in out
