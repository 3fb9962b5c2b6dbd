"""Propagation and the video benchmark: J/F/R-AUC maths, the read-out on a synthetic moving
square, a round's frame range, fusion against overwrite, the robot's clicks, and the real
model on short DAVIS sequences (skipped without model or data)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from clickmask.evaluation.video.metrics import (
    boundary, f_measure, j_measure, jf_measure, r_auc, spearman, tolerance_px,
)
from clickmask.evaluation.video.protocol import error_click, largest_frame, mask_centre
from clickmask.propagation.decode import DecodeOptions
from clickmask.propagation.fusion import distance_weight, fuse_low_res
from clickmask.propagation.grid import FrameGrid, grid_to_low_res, low_res_to_grid, sigmoid
from clickmask.propagation.propagator import PropagationOptions, Track
from clickmask.propagation.readout import Memory, MemoryFrame, Projection, ReadOut, read_out
from clickmask.propagation.rounds import round_passes


def square(shape, top, left, side):
    m = np.zeros(shape, bool)
    m[top:top + side, left:left + side] = True
    return m


# --- metrics ------------------------------------------------------------------------
def test_j_measure_hand_made():
    a = square((10, 10), 0, 0, 4)  # 16 px
    b = square((10, 10), 0, 2, 4)  # overlaps 8 px
    assert j_measure(a, b) == pytest.approx(8 / 24)
    assert j_measure(np.zeros((5, 5), bool), np.zeros((5, 5), bool)) == 1.0
    assert j_measure(a, np.zeros_like(a)) == 0.0


def test_boundary_of_a_square_is_its_ring():
    m = square((30, 30), 5, 5, 10)
    b = boundary(m)
    assert b.sum() == 4 * 10 - 4
    assert not b[7:13, 7:13].any()
    # the image border is not an object edge
    assert boundary(np.ones((8, 8), bool)).sum() == 0


def test_tolerance_is_davis_value():
    assert tolerance_px((480, 854)) == math.ceil(0.008 * math.hypot(480, 854)) == 8
    assert tolerance_px((100, 100)) == 2


def test_f_measure_known_shapes():
    gt = square((100, 100), 10, 10, 20)
    assert f_measure(gt, gt) == 1.0
    # shifted by 1 px: every boundary pixel within the 2 px tolerance
    assert f_measure(gt, square((100, 100), 10, 11, 20)) == 1.0
    # far apart: no boundary pixel matches
    assert f_measure(gt, square((100, 100), 10, 50, 20)) == 0.0
    # an extra far square: precision 76 / (76 + 36), recall 1
    pred = gt | square((100, 100), 70, 70, 10)
    p = 76 / 112
    assert f_measure(gt, pred) == pytest.approx(2 * p / (p + 1))
    empty = np.zeros_like(gt)
    assert f_measure(empty, empty) == 1.0
    assert f_measure(gt, empty) == 0.0 and f_measure(empty, gt) == 0.0
    j, f, jf = jf_measure(gt, gt)
    assert (j, f, jf) == (1.0, 1.0, 1.0)


def test_r_auc_as_civos_defines_it():
    assert r_auc([1.0] * 8) == pytest.approx(8.5 / 9)
    values = [0.5, 0.6, 0.7, 0.8, 0.8, 0.8, 0.9, 0.9]
    y = [0.0, *values, 0.9]
    expected = sum((y[i] + y[i + 1]) / 2 for i in range(9)) / 9
    assert r_auc(values) == pytest.approx(expected)
    assert r_auc([]) == 0.0


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2], [1, 2]) is None
    assert spearman([1, 1, 1], [1, 2, 3]) is None


# --- rounds and fusion --------------------------------------------------------------
def test_first_round_runs_to_both_ends():
    back, fwd = round_passes(set(), 5, 10)
    assert back.frames == (4, 3, 2, 1, 0) and back.stop is None and back.step == -1
    assert fwd.frames == (6, 7, 8, 9) and fwd.stop is None and fwd.step == 1


def test_later_round_stops_at_earlier_annotations():
    back, fwd = round_passes({2, 8, 9}, 5, 10)
    assert back.frames == (4, 3) and back.stop == 2
    assert fwd.frames == (6, 7) and fwd.stop == 8
    back, fwd = round_passes({4, 6}, 5, 10)
    assert back.frames == () and fwd.frames == ()
    back, fwd = round_passes({3}, 0, 10)  # first frame: nothing backward
    assert back.frames == () and fwd.frames == (1, 2)
    back, fwd = round_passes({5, 2}, 5, 10)  # re-annotating a frame propagates the same way
    assert back.frames == (4, 3) and fwd.frames == (6, 7, 8, 9)
    with pytest.raises(ValueError):
        round_passes(set(), 10, 10)


def test_distance_weight():
    assert distance_weight(5, 5, 0) == 1.0
    assert distance_weight(0, 5, 0) == 0.0
    assert distance_weight(4, 5, 0) == pytest.approx(0.8)
    assert distance_weight(3, 5, None) == 1.0


def test_fusion_trusts_the_nearer_annotation_where_overwrite_does_not():
    """Old masks came from an annotation at frame 0 and are right on a part the new round
    (annotated at frame 10) misses; fusion keeps that part near frame 0, overwrite loses it."""
    part = np.zeros((256, 256), bool)
    part[100:150, 100:150] = True
    body = np.zeros((256, 256), bool)
    body[50:100, 50:200] = True
    old = np.where(body | part, 8.0, -8.0).astype(np.float32)
    new = np.where(body, 8.0, -8.0).astype(np.float32)
    near_old = fuse_low_res(new, old, distance_weight(2, 10, 0)) > 0
    near_new = fuse_low_res(new, old, distance_weight(8, 10, 0)) > 0
    overwrite = new > 0
    assert near_old[part].all() and not overwrite[part].any()
    assert not near_new[part].any()
    assert (near_old[body]).all() and (near_new[body]).all()
    # difference-aware: where the correction changed the mask, the new mask wins even near the old source
    diff = part.astype(np.float32)
    assert not (fuse_low_res(new, old, distance_weight(2, 10, 0), diff) > 0)[part].any()
    # the weights' extremes are the two masks
    assert np.array_equal(fuse_low_res(new, old, 1.0) > 0, new > 0)
    assert np.array_equal(fuse_low_res(new, old, 0.0) > 0, old > 0)


# --- read-out -----------------------------------------------------------------------
#: The synthetic videos are 1024x256 frames (any multiple): 64x16 embedding cells, 1 cell per pixel of a 64x16 frame.
ROWS, COLS = 16, 64


def moving_square_embeddings(frames=8, side=6, step=5, seed=0):
    """1x256x64x64 embeddings of a 1024x256 video (the top 16 rows of cells hold image): a static
    textured background (one random feature per cell) and a square object (one random feature
    per object cell, moving with it, with noise). Returns (embeddings, 64x64 object masks)."""
    rng = np.random.default_rng(seed)
    background = rng.standard_normal((256, 64, 64)).astype(np.float32)
    texture = rng.standard_normal((256, side, side)).astype(np.float32)
    embs, masks = [], []
    for t in range(frames):
        e = background.copy()
        top, left = 4 + t % 3, 3 + step * t
        e[:, top:top + side, left:left + side] = texture + 0.3 * rng.standard_normal(texture.shape)
        m = np.zeros((64, 64), np.float32)
        m[top:top + side, left:left + side] = 1.0
        embs.append(e[None])
        masks.append(m)
    return embs, masks


def test_readout_follows_a_moving_square():
    embs, masks = moving_square_embeddings()
    grid = FrameGrid(256, 1024)
    assert grid.cells == (ROWS, COLS)
    memory = Memory(MemoryFrame(0, grid.keys(embs[0]), grid.flat(masks[0]), "annotated"), every=3)
    for t in range(1, len(embs)):
        q = grid.keys(embs[t])
        keys, values = memory.stacked()
        out = grid.unflat(read_out(q, keys, values))
        assert j_measure(masks[t] > 0.5, out > 0.5) > 0.95
        memory.add_propagated(MemoryFrame(t, q, grid.flat(out), "previous"))
    assert len(memory.frames()) <= 1 + memory.max_periodic + 1


def test_readout_top_k_softmax():
    keys = np.eye(4, dtype=np.float32)
    values = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
    q = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]], np.float32)
    out = read_out(q, keys, values, k=2, temperature=0.05)
    assert out[0] == pytest.approx(1.0, abs=1e-6) and out[1] == pytest.approx(0.0, abs=1e-6)
    # k = 1: exactly the nearest memory cell's value
    q2 = np.array([[0.9, 0.1, 0, 0]], np.float32)
    assert read_out(q2, keys, values, k=1)[0] == 1.0
    assert read_out(q, keys[:0], values[:0]).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("m,k", [(3, 20), (20, 20), (1000, 20), (2304 * 4, 20), (500, 1)])
def test_onnxruntime_readout_equals_the_numpy_readout(m, k):
    rng = np.random.default_rng(m)

    def unit(a):
        return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)

    query = unit(rng.standard_normal((300, 64)))
    keys = unit(rng.standard_normal((m, 64)) + 2 * query[rng.integers(0, 300, m)])
    values = rng.random(m).astype(np.float32)
    got = ReadOut(threads=2)(query, keys, values, k=k, temperature=0.05)
    assert got.dtype == np.float32 and got.shape == (300,)
    assert np.allclose(got, read_out(query, keys, values, k=k, temperature=0.05), atol=1e-5)
    assert ReadOut(threads=1)(query, keys[:0], values[:0]).tolist() == [0.0] * 300


def test_projection_keeps_unit_keys():
    rng = np.random.default_rng(1)
    keys = rng.standard_normal((500, 256)).astype(np.float32)
    proj = Projection.fit(keys, 32)
    out = proj(keys)
    assert out.shape == (500, 32)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert Projection.fit(keys, 256)(keys) is keys


def test_memory_is_bounded_and_follows_civos_rule():
    z = np.zeros((1, 2), np.float32)
    mem = Memory(MemoryFrame(10, z, np.zeros(1), "annotated"), every=5, max_periodic=2)
    for j in range(11, 40):
        mem.add_propagated(MemoryFrame(j, z, np.zeros(1), "previous"))
    assert [f.index for f in mem.frames()] == [10, 30, 35, 39]


def test_grid_round_trips():
    grid = FrameGrid(480, 854)
    assert grid.resized == (576, 1024) and grid.cells == (36, 64)
    mask = np.zeros((480, 854), bool)
    mask[100:300, 200:500] = True
    g = grid.mask_to_grid(mask)
    assert g.shape == (64, 64) and g[36:].sum() == 0
    assert g.sum() * 16 * 16 == pytest.approx(mask.sum() * (1024 / 854) ** 2, rel=0.02)
    low = grid.mask_to_low_res(mask)
    assert np.allclose(low_res_to_grid(low) > 0.5, g > 0.5)
    assert np.allclose(sigmoid(grid_to_low_res(g)) > 0.5, cv2.resize(g, (256, 256)) > 0.5)


class FakeModel:
    """The SAM model's surface a Track uses, over synthetic embeddings: the 'decoder' returns its mask input."""

    side = 1024

    def __init__(self, embs):
        self.embs = embs

    def image_embedding(self, image):
        return self.embs[int(image[0, 0, 0])], True

    def decode_candidates(self, coords, labels, mask_input, embedding=None):
        assert mask_input is not None
        return np.asarray(mask_input, np.float32)[None], np.array([0.9], np.float32)

    def select_candidate(self, n, scores):
        return 0

    def upsample(self, low_res, size):
        nh, nw = FrameGrid(*size).resized  # the padding cropped, as the real model's upsample does
        crop = low_res[: nh * 256 // 1024, : nw * 256 // 1024]
        return cv2.resize(crop, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


class FakeFrames:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def frame(self, i):
        return np.full((ROWS, COLS, 3), i, np.uint8)  # the fake model reads the index from pixel (0, 0)


@pytest.mark.parametrize("fusion", ["fuse", "overwrite"])
def test_track_propagates_a_moving_square_both_ways(fusion):
    embs, masks = moving_square_embeddings(frames=9)
    gts = [m[:ROWS] > 0.5 for m in masks]  # one pixel per cell
    track = Track(FakeModel(embs), FakeFrames(9), PropagationOptions(fusion=fusion, decode=DecodeOptions(point=False, box=False)))
    track.annotate(4, gts[4])
    changed = track.propagate(4)
    assert sorted(changed) == [0, 1, 2, 3, 5, 6, 7, 8]
    for t, (gt, mask) in enumerate(zip(gts, track.masks())):
        assert j_measure(gt, mask) > 0.8, t
    assert len(track.propagate_ms) == 8
    # a second round at frame 8 propagates only to 5..7 (frame 4 was annotated before)
    before = track.states[8].mask.copy()
    track.annotate(8, gts[8])
    assert sorted(track.propagate(8, before=before)) == [5, 6, 7]
    assert all(c > 0 for c in track.confidences())


# --- the robot ------------------------------------------------------------------------
def test_largest_frame_earliest_on_ties():
    gts = [square((20, 20), 0, 0, s) for s in (3, 5, 5, 4)]
    assert largest_frame(gts) == 1


def test_error_click_centre_of_largest_region():
    gt = square((100, 100), 10, 10, 40)
    pred = gt.copy()
    pred[10:50, 10:30] = False  # missed 800 px
    pred |= square((100, 100), 70, 70, 9)  # wrong 81 px: under 100, ignored
    click = error_click(gt, pred, [])
    assert click.positive and 10 <= click.x < 30 and 10 <= click.y < 50
    assert abs(click.x - 19.5) <= 1 and 19 <= click.y <= 40  # 10 px from the region's edge (a ridge)
    pred2 = gt | square((100, 100), 60, 60, 30)  # wrong 900 px is now the largest
    click2 = error_click(gt, pred2, [])
    assert not click2.positive and 60 <= click2.x < 90
    small = gt.copy()
    small[10:19, 10:19] = False  # 81 px missed only
    assert error_click(gt, small, []) is None
    c = mask_centre(gt)
    assert c.positive and abs(c.x - 29.5) <= 1 and abs(c.y - 29.5) <= 1


# --- the real model on short DAVIS sequences ------------------------------------------
@pytest.fixture(scope="module")
def davis(data_root):
    from clickmask.evaluation.video.data import load_video_dataset

    if not (data_root / "DAVIS2016_dev" / "images").is_dir():
        pytest.skip(f"DAVIS2016_dev not found under {data_root}")
    return load_video_dataset(data_root, "DAVIS2016_dev", limit=2)


def test_protocol_on_real_davis_sequences(model_spec, davis):
    from clickmask.engine.loader import load_predictor
    from clickmask.engine.refine.predictor import sam_model
    from clickmask.evaluation.video.protocol import ProtocolOptions, run_sequence
    from clickmask.evaluation.video.report import summarize_runs

    predictor = load_predictor(None, disk_cache=True)
    model = sam_model(predictor)
    results = []
    for sample in davis:
        frames, gts = sample.open(6)
        res = run_sequence(predictor, model, sample.name, frames, gts, ProtocolOptions(rounds=3))
        assert len(res.jf) == 3 and all(0.0 <= v <= 1.0 for v in res.jf)
        assert res.clicks[0] == 1 and all(c <= 3 for c in res.clicks)
        assert len(set(res.annotated)) == 3
        assert res.jf[-1] >= res.jf[0] - 0.05
        assert res.jf[-1] > 0.6, (sample.name, res.jf)
        assert len(res.propagate_ms) >= 5
        results.append(res)
    report = summarize_runs(results)
    assert report["n"] == 2 and 0 < report["r_auc_jf"] < 1


@pytest.mark.parametrize("m", [20, 100, 1000, 2304 * 3 + 5])
def test_two_step_top_k_is_exact(m):
    from clickmask.propagation.readout import top_k

    rng = np.random.default_rng(m)
    sim = rng.standard_normal((50, m)).astype(np.float32)
    k = 20
    idx, values = top_k(sim, k)
    expected = np.sort(sim, axis=1)[:, -min(k, m):]
    assert np.allclose(np.sort(values, axis=1), expected)
    assert np.allclose(np.take_along_axis(sim, np.asarray(idx), axis=1), values)


# --- the command ----------------------------------------------------------------------
def test_eval_video_options():
    from clickmask.cli import build_parser
    from clickmask.cli.eval_video import parse_propagation
    from clickmask.errors import ClickmaskError

    args = build_parser().parse_args(["eval-video", "--dataset", "DAVIS2016_dev", "--limit", "2", "--pointer"])
    assert args.dataset == "DAVIS2016_dev" and args.limit == 2 and args.pointer and args.fusion == "fuse"
    opts = parse_propagation("k=10,dims=256,box=0,negatives=1", "overwrite")
    assert (opts.k, opts.dims, opts.fusion) == (10, 256, "overwrite")
    assert opts.decode.box is False and opts.decode.negatives == 1
    with pytest.raises(ClickmaskError, match="unknown propagation option"):
        parse_propagation("nope=1", "fuse")
    with pytest.raises(ClickmaskError):
        parse_propagation("k=ten", "fuse")


def test_eval_video_command_on_a_tiny_sequence(model_spec, davis, data_root, tmp_path, capsys):
    import json

    from clickmask.cli import main

    out = tmp_path / "video.json"
    code = main(["eval-video", "--dataset", "DAVIS2016_dev", "--data-root", str(data_root), "--limit", "1",
                 "--frames", "4", "--rounds", "2", "--pointer", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    for run in ("gt", "pointer"):
        assert report[run]["n"] == 1 and len(report[run]["jf"]) == 2
        assert report[run]["r_auc_jf"] > 0
    assert report["encoder_fps"] > 0 and report["complete"] is True
    assert "R-AUC" in capsys.readouterr().out
