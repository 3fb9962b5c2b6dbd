"""Sequential benchmark: sequence building, NoC with free proposals, reports, CLI, real-model runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clickmask.cli import main
from clickmask.engine.clicks import Click
from clickmask.errors import ClickmaskError, DatasetError
from clickmask.evaluation.sequential.report import build_report, compare, format_table
from clickmask.evaluation.sequential.runner import InstanceResult, SequentialOptions, run_sequence
from clickmask.evaluation.sequential.sequences import ObjectSequence, SequenceOptions, build_sequences, select_sequences


def _disk(h: int, w: int, cx: int, cy: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r**2


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _coco_like(root: Path) -> Path:
    """Images with disks: category 'a' 3 big + 1 small + 1 crowd instance, 'b' 2 instances."""
    folder = root / "Coco"
    entries = []
    rng = np.random.default_rng(0)
    for i in range(3):
        img = rng.integers(0, 60, size=(80, 100, 3)).astype(np.uint8)
        masks = [("a", _disk(80, 100, 30, 40, 15), 0), ("b", _disk(80, 100, 75, 40, 12), 0)]
        if i == 0:
            masks += [("a", _disk(80, 100, 10, 10, 3), 0), ("a", _disk(80, 100, 60, 65, 10), 1)]
        for k, (cat, mask, crowd) in enumerate(masks):
            img[mask] = 200
            _save(folder / "masks" / f"im{i}_{k}.png", (mask * 255).astype(np.uint8))
            entries.append({"image": f"images/im{i}.png", "mask": f"masks/im{i}_{k}.png", "category": cat,
                            "iscrowd": crowd, "area": int(mask.sum())})
        _save(folder / "images" / f"im{i}.png", img)
    # dataset order is not name order: put image 2 first
    entries = [e for e in entries if "im2" in e["image"]] + [e for e in entries if "im2" not in e["image"]]
    (folder / "instances.json").write_text(json.dumps(entries))
    return folder


def _video_like(root: Path, frames: int = 12) -> Path:
    folder = root / "Vid"
    for seq, n in (("zeta", frames), ("alpha", 4)):
        for f in range(n):
            mask = _disk(60, 80, 20 + f * 3, 30, 10)
            img = np.full((60, 80, 3), 30, np.uint8)
            img[mask] = 220
            _save(folder / "images" / seq / f"{f:05d}.jpg", img)
            _save(folder / "masks" / seq / f"{f:05d}.png", (mask * 255).astype(np.uint8))
    (folder / "sequences.txt").write_text("zeta\nalpha\n")
    return folder


def test_coco_sequences_filter_crowd_small_and_keep_dataset_order(tmp_path):
    _coco_like(tmp_path)
    seqs = build_sequences(tmp_path, "Coco", SequenceOptions(min_instances=3, min_area=100))
    assert [s.category for s in seqs] == ["a", "b"]  # the small and the crowd 'a' are left out
    assert [s.name for s in seqs[0].samples] == ["im2_0", "im0_0", "im1_0"]
    assert [s.name for s in seqs[1].samples] == ["im2_1", "im0_1", "im1_1"]
    seqs = build_sequences(tmp_path, "Coco", SequenceOptions(min_instances=3, min_area=500))
    assert [s.category for s in seqs] == ["a"]  # 'b' disks have ~450 px
    assert len(build_sequences(tmp_path, "Coco", SequenceOptions(min_instances=4, min_area=10))[0].samples) == 4
    with pytest.raises(DatasetError, match="no sequence with at least 5 objects"):
        build_sequences(tmp_path, "Coco")


def test_video_sequences_take_every_nth_frame_in_listed_order(tmp_path):
    _video_like(tmp_path)
    seqs = build_sequences(tmp_path, "Vid", SequenceOptions(min_instances=2, frame_step=5))
    assert [s.category for s in seqs] == ["zeta"]  # alpha has only 1 frame at step 5
    assert [s.name for s in seqs[0].samples] == ["zeta/00000", "zeta/00005", "zeta/00010"]
    seqs = build_sequences(tmp_path, "Vid", SequenceOptions(min_instances=1, frame_step=5), limit=1)
    assert len(seqs) == 1
    both = build_sequences(tmp_path, "Vid", SequenceOptions(min_instances=1, frame_step=5))
    assert [s.category for s in select_sequences(both, ["alpha", "zeta"], "Vid")] == ["zeta", "alpha"]
    with pytest.raises(DatasetError, match="unknown categories \\['beta'\\]"):
        select_sequences(both, ["zeta", "beta"], "Vid")


def test_flat_dataset_without_instances_cannot_form_sequences(tmp_path):
    _save(tmp_path / "Flat" / "images" / "a.png", np.zeros((8, 8, 3), np.uint8))
    _save(tmp_path / "Flat" / "masks" / "a.png", np.full((8, 8), 255, np.uint8))
    with pytest.raises(DatasetError, match="not in a per-video folder"):
        build_sequences(tmp_path, "Flat")


def _result(ious, free, hit=None, category="c", name="o"):
    return InstanceResult(name=name, category=category, ious=ious, clicks=[Click(0, 0, True)] * len(ious),
                          free_first=free, proposal=(0.0, 0.0) if hit is not None else None, hit=hit)


def test_free_proposal_is_not_counted():
    assert _result([0.9], free=True, hit=True).noc(0.85, 20) == 0
    assert _result([0.5, 0.86, 0.91], free=True, hit=True).noc(0.85, 20) == 1
    assert _result([0.5, 0.86, 0.91], free=False).noc(0.85, 20) == 2
    assert _result([0.5, 0.86, 0.91], free=False).noc(0.9, 20) == 3
    # 20 counted clicks plus the free one; never reached -> 20
    assert _result([0.1] * 21, free=True, hit=True).noc(0.85, 20) == 20
    assert _result([0.1] * 20 + [0.9], free=True, hit=True).noc(0.85, 20) == 20


def test_report_overall_per_category_and_comparison():
    base = [_result([0.5, 0.9], False, category="c", name="o1"), _result([0.9], False, category="d", name="o2")]
    icp = [_result([0.5, 0.9], False, hit=False, category="c", name="o1"),
           _result([0.9], True, hit=True, category="d", name="o2")]
    rb = build_report(base, "X", "m", {}, 20, 0.9)
    ri = build_report(icp, "X", "m", {"icp": True}, 20, 0.9)
    assert rb["noc"]["85"] == 1.5 and ri["noc"]["85"] == 1.0
    assert ri["icp"] == {"proposals": 2, "hits": 1, "hit_rate": 0.5, "siblings": 0}
    assert ri["per_category"]["d"]["noc"]["90"] == 0.0
    assert ri["per_object"]["o2"]["free_first"] is True
    cmp = compare(rb, ri)
    assert cmp["overall"]["change"] == pytest.approx(-1 / 3)
    assert cmp["per_category"]["c"]["change"] == 0.0 and cmp["worst_category"] == "c"
    assert "NoC@85" in format_table(ri) and "1/2" in format_table(ri)
    with pytest.raises(ClickmaskError, match="below the highest reported threshold"):
        build_report(base, "X", "m", {}, 20, 0.9 - 0.1)


def test_cli_sequential_baseline_with_the_fallback_model(tmp_path, capsys):
    _video_like(tmp_path, frames=25)
    out = tmp_path / "r.json"
    code = main(["eval", "--sequential", "--learn", "none", "--dataset", "Vid", "--data-root", str(tmp_path),
                 "--model", "grabcut", "--max-clicks", "3", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rep = json.loads(out.read_text())
    assert rep["n"] == 5 and rep["sequences"] == 1 and set(rep["noc"]) == {"85", "90"}
    assert "zeta" in rep["per_category"] and "zeta" in captured.out
    assert rep["options"]["icp"] is False and rep["options"]["opo"] is False
    # the default is the app's configuration; its proposals need an embedding: the fallback has none
    code = main(["eval", "--sequential", "--dataset", "Vid", "--data-root", str(tmp_path),
                 "--model", "grabcut", "--max-clicks", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "SAM-style" in err and err.count("\n") == 1


def test_cli_default_is_the_apps_configuration(model_spec, tmp_path, capsys):
    """Real model: ``eval --sequential`` runs ICP, OPO (the app's OPOConfig) and the first-click memory."""
    from dataclasses import asdict

    from clickmask.learning.granularity import RULE
    from clickmask.learning.opo import OPOConfig

    _video_like(tmp_path, frames=25)
    out = tmp_path / "r.json"
    code = main(["eval", "--sequential", "--dataset", "Vid", "--data-root", str(tmp_path),
                 "--max-clicks", "2", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    options = json.loads(out.read_text())["options"]
    assert options["icp"] is True and options["opo"] is True and options["granularity"] is True
    assert options["granularity_rule"] == RULE and options["opo_config"] == asdict(OPOConfig())


@pytest.mark.parametrize("extra, problem", [
    (["--learn", "icp,oracle"], "--learn: unknown part 'oracle'"),
    (["--learn", ""], "--learn: unknown part"),
    (["--plot", "x.png"], "do not apply to --sequential"),
])
def test_cli_sequential_options_are_checked(tmp_path, capsys, extra, problem):
    _video_like(tmp_path)
    code = main(["eval", "--sequential", "--dataset", "Vid", "--data-root", str(tmp_path), "--model", "grabcut",
                 *extra])
    err = capsys.readouterr().err
    assert code == 2 and problem in err and err.count("\n") == 1


def test_cli_categories_need_sequential(capsys):
    code = main(["eval", "--dataset", "GrabCut", "--categories", "a"])
    err = capsys.readouterr().err
    assert code == 2 and "--categories needs --sequential" in err


def test_eval_help_lists_at_most_15_general_options_and_each_benchmarks_own_under_its_heading(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = capsys.readouterr().out
    general, _, modes = text.partition("\nsequential benchmark")
    options = [line for line in general.partition("options:")[2].splitlines() if line.lstrip().startswith("-")]
    assert 5 <= len(options) <= 15, options
    sequential, _, reference = modes.partition("\nreference-guided segmentation")
    assert "--sequential" in sequential and "--learn" in sequential and "--reference" not in sequential
    assert all(f"--{o}" in reference for o in ("reference", "configs", "every", "noc-every", "local"))


def test_proposals_on_real_video_frames(sam_predictor, data_root, monkeypatch):
    """Real model, DAVIS blackswan: the app's proposals (the checked bank, then the object map) hit the swan,
    and an accepted proposal starts from its mask."""
    seqs = build_sequences(data_root, "DAVIS2016_dev", SequenceOptions(frame_step=10, min_instances=3))
    swan = next(s for s in seqs if s.category == "blackswan")
    seq = ObjectSequence("blackswan", swan.samples[:3])
    results = run_sequence(sam_predictor, seq, SequentialOptions(icp=True, granularity=False, max_clicks=5))
    assert results[0].proposal is None and not results[0].free_first
    assert all(r.hit and r.free_first for r in results[1:])
    assert all(r.ious[0] > 0.8 for r in results[1:])
    base = run_sequence(sam_predictor, seq, SequentialOptions(icp=False, granularity=False, max_clicks=5))
    assert sum(r.noc(0.85, 5) for r in results) < sum(r.noc(0.85, 5) for r in base)
    # the accepting click's own work (the proposal's mask made into the first prediction) is its click time
    import time

    import clickmask.evaluation.sequential.runner as runner

    real = runner.accepted_prediction
    monkeypatch.setattr(runner, "accepted_prediction", lambda *a: time.sleep(0.2) or real(*a))
    slow = run_sequence(sam_predictor, ObjectSequence("blackswan", swan.samples[:2]),
                        SequentialOptions(icp=True, granularity=False, max_clicks=1))
    assert slow[1].free_first and slow[1].click_ms[0] >= 200


def test_object_map_proposals_on_real_video_frames(sam_predictor, data_root):
    """Real model, DAVIS libby (a thin dog behind a fence): after the first frame the object map's
    proposals hit the dog and start from a mask of it, made by the decoder with the map as mask input."""
    seqs = build_sequences(data_root, "DAVIS2016_dev", SequenceOptions(frame_step=5, min_instances=3))
    libby = next(s for s in seqs if s.category == "libby")
    seq = ObjectSequence("libby", libby.samples[:4])
    results = run_sequence(sam_predictor, seq, SequentialOptions(icp=True, granularity=False, max_clicks=3))
    assert results[0].proposal is None
    assert all(r.hit and r.free_first for r in results[1:])
    assert np.mean([r.ious[0] for r in results[1:]]) > 0.6, [r.ious[0] for r in results]


def test_granularity_memory_runs_in_sequences_and_needs_refined_inference(sam_predictor, data_root):
    """Real model, DAVIS frames: the memory is fed by every finished object; the raw engine is refused."""
    from clickmask.engine.refine import InferenceOptions, RefinedPredictor

    seqs = build_sequences(data_root, "DAVIS2016_dev", SequenceOptions(frame_step=10, min_instances=3))
    horse = next(s for s in seqs if s.category == "horsejump-high")
    seq = ObjectSequence("horsejump-high", horse.samples[:3])
    refined = RefinedPredictor(sam_predictor, InferenceOptions.parse("first=central"))
    results = run_sequence(refined, seq, SequentialOptions(icp=False, granularity=True, max_clicks=3))
    assert len(results) == 3 and all(r.ious for r in results)
    with pytest.raises(ClickmaskError, match="granularity memory needs the refined inference"):
        run_sequence(sam_predictor, seq, SequentialOptions(icp=False, granularity=True, max_clicks=3))


class _RecordingAdapter:
    """An OPO stand-in for the runner: plain predictor, records what each finished object teaches."""

    def __init__(self, predictor):
        self.predictor, self.masks = predictor, []

    def predictor_for(self, category, index):
        return self.predictor

    def finished(self, category, index, embedding, mask):
        self.masks.append(mask)


def test_opo_learns_only_objects_that_reached_stop_iou(sam_predictor, tmp_path):
    """Objects that never reach stop_iou (a user would fix them by hand first) give OPO an empty mask."""
    _video_like(tmp_path)
    seq = build_sequences(tmp_path, "Vid", SequenceOptions(min_instances=3, frame_step=5))[0]
    for stop_iou, taught in ((1.01, False), (0.5, True)):
        adapter = _RecordingAdapter(sam_predictor)
        opts = SequentialOptions(max_clicks=1, stop_iou=stop_iou, icp=False, granularity=False)
        run_sequence(sam_predictor, seq, opts, adapter)
        assert len(adapter.masks) == 3 and all(m.any() == taught for m in adapter.masks), stop_iou


def test_merged_parts_equal_one_report_over_all_sequences():
    """merge_reports: runs on disjoint sequences combine into the report of one run over all of them."""
    from clickmask.evaluation.sequential.report import merge_reports

    c = [_result([0.5, 0.9], False, category="c", name="o1"), _result([0.95], True, hit=True, category="c", name="o2")]
    d = [_result([0.1] * 20, False, hit=False, category="d", name="o3")]
    whole = build_report(c + d, "X", "m", {"icp": True}, 20, 0.9)
    merged = merge_reports([build_report(c, "X", "m", {"icp": True}, 20, 0.9),
                            build_report(d, "X", "m", {"icp": True}, 20, 0.9)])
    for key in ("n", "sequences", "noc", "failures", "icp", "per_category", "per_object"):
        assert merged[key] == pytest.approx(whole[key]) if key == "noc" else merged[key] == whole[key], key
    assert merged["merged_from"] == [["c"], ["d"]] and "opo_gate" not in merged
    gated = [build_report(part, "X", "m", {"icp": True}, 20, 0.9) for part in (c, d)]
    gated[0]["opo_gate"] = {"c": {"gains": [0.1], "served": [False, True]}}
    gated[1]["opo_gate"] = {"d": {"gains": [], "served": [False]}}
    assert merge_reports(gated)["opo_gate"] == {**gated[0]["opo_gate"], **gated[1]["opo_gate"]}
    older = build_report(d, "X", "m", {"icp": True, "opo": False}, 20, 0.9)  # an off switch = absent
    assert merge_reports([build_report(c, "X", "m", {"icp": True}, 20, 0.9), older])["n"] == 3
    with pytest.raises(ClickmaskError, match="sequence c is in two reports"):
        merge_reports([build_report(c, "X", "m", {}, 20, 0.9), build_report(c, "X", "m", {}, 20, 0.9)])
    with pytest.raises(ClickmaskError, match="different options"):
        merge_reports([build_report(c, "X", "m", {}, 20, 0.9), build_report(d, "X", "m", {"icp": True}, 20, 0.9)])


def test_paired_difference_counts_objects_and_brackets_the_mean():
    from clickmask.evaluation.sequential.report import format_paired, paired_difference

    def report(nocs, dataset="X"):
        return {"dataset": dataset, "per_object": {f"o{i}": {"category": "c" if i < 3 else "d", "noc": {"85": v}}
                                                   for i, v in enumerate(nocs)}}

    base, other = report([5, 5, 5, 5, 20]), report([4, 4, 5, 7, 20])
    result = paired_difference(base, other)
    assert result["objects"] == 5 and result["total"] == -0.0 and result["better"] == 2 and result["worse"] == 1
    low, high = result["ci"]
    assert -1 <= low < 0 < high <= 2  # the bootstrap mean stays within the per-object differences
    only_c = paired_difference(base, other, categories=["c"])
    assert only_c["objects"] == 3 and only_c["total"] == -2 and only_c["ci"][1] <= 0
    assert "-2 clicks on 3 objects" in format_paired(only_c)
    with pytest.raises(ClickmaskError, match="cannot compare"):
        paired_difference(base, report([1], dataset="Y"))
    with pytest.raises(ClickmaskError, match="share no object"):
        paired_difference(base, {"dataset": "X", "per_object": {}})


def test_missed_proposal_inside_a_pending_object_is_a_sibling(sam_predictor, tmp_path, monkeypatch):
    """Two objects of one category per image, the left one first in dataset order; the proposal finds the
    right one: a miss, recorded as a sibling (the fixed order of the protocol is kept)."""
    import clickmask.evaluation.sequential.runner as runner
    from clickmask.learning.proposal import CheckedProposal

    def right_disk_unless_done(bank, predictor, embedding, shape, ignore, candidates):
        right_done = ignore is not None and ignore[40, 75]
        return CheckedProposal(Click(30.0 if right_done else 75.0, 40.0, True))

    monkeypatch.setattr(runner, "checked_proposal", right_disk_unless_done)
    monkeypatch.setattr(runner.ObjectMap, "ready", property(lambda self: False))
    monkeypatch.setattr(runner, "accepted_prediction", lambda checked, predictor, ignore: None)
    folder = tmp_path / "Two"
    entries = []
    for i in range(2):
        img = np.full((80, 100, 3), 40, np.uint8)
        for k, cx in enumerate((30, 75)):
            disk = _disk(80, 100, cx, 40, 12)
            img[disk] = 200
            _save(folder / "masks" / f"im{i}_{k}.png", (disk * 255).astype(np.uint8))
            entries.append({"image": f"images/im{i}.png", "mask": f"masks/im{i}_{k}.png", "category": "a",
                            "iscrowd": 0, "area": int(disk.sum())})
        _save(folder / "images" / f"im{i}.png", img)
    (folder / "instances.json").write_text(json.dumps(entries))
    seq = build_sequences(tmp_path, "Two", SequenceOptions(min_instances=4, min_area=100))[0]
    fixed = run_sequence(sam_predictor, seq, SequentialOptions(icp=True, granularity=False, max_clicks=3))
    assert [r.name for r in fixed] == ["im0_0", "im0_1", "im1_0", "im1_1"]
    assert [(r.hit, r.sibling) for r in fixed] == [(None, None), (True, False), (False, True), (True, False)]
    report = build_report(fixed, "Two", "m", {"icp": True}, 3, 0.9)
    assert report["icp"] == {"proposals": 3, "hits": 2, "hit_rate": 2 / 3, "siblings": 1}
    assert "1 misses inside another object" in format_table(report)
