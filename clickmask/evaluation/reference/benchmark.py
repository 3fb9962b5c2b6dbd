"""The reference benchmark: every target of a dataset under each reference configuration.

For each target (a :class:`~.cases.Case`: :mod:`.pairs` on a part dataset, :mod:`.combinations` on an
instance dataset, :mod:`.frames` on a video dataset) the robot user clicks as in the standard
benchmark (first click at the target's centre, then at the largest error),
once per configuration, on the same engine: ``none`` (no reference) and the
reference with the uses of a :class:`~clickmask.learning.reference.ReferenceUses`
text. An object stops once its IoU reaches the highest threshold (the later
clicks cannot change NoC@80/85/90); IoU after the first click is reported too.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from clickmask.engine.session import InteractiveSession
from clickmask.errors import ClickmaskError
from clickmask.evaluation.clicker import Clicker
from clickmask.evaluation.metrics import noc, reached, threshold_key
from clickmask.evaluation.reference.cases import Case, case_masks, open_cases
from clickmask.geometry.masks import iou
from clickmask.io.images import load_image
from clickmask.learning.reference import Reference, ReferencePredictor, ReferenceUses

THRESHOLDS = (0.80, 0.85, 0.90)
NONE = "none"
#: The configurations of a full run: name -> uses (``none``: no reference).
CONFIGS: dict[str, str] = {
    "none": NONE,
    "choose_positive_only": "choose,positive_only",
    "choose": "choose",
    "prior": "prior",
    "points": "points",
    "all": "choose,prior,points",
}


def parse_configs(text: str | None) -> dict[str, str]:
    """``--configs``: None = :data:`CONFIGS`; else ``name:uses;name:uses`` or names of :data:`CONFIGS`."""
    if not text:
        return dict(CONFIGS)
    out: dict[str, str] = {}
    for item in (i.strip() for i in text.split(";") if i.strip()):
        name, _, uses = item.partition(":")
        name = name.strip()
        if not uses:
            if name not in CONFIGS:
                raise ClickmaskError(f"--configs: unknown configuration {name!r} (known: {', '.join(CONFIGS)})")
            uses = CONFIGS[name]
        if uses.strip() != NONE:
            ReferenceUses.parse(uses)  # fail early
        out[name] = uses.strip()
    return out


@dataclass
class TargetResult:
    """One target under one configuration: IoU after each click (stopped early), first-click ms."""

    name: str
    kind: str
    ious: list[float]
    first_ms: float
    token: int | None
    full: bool = True  # clicked up to max_clicks (False: first click only)


def run_target(predictor: ReferencePredictor, gt: np.ndarray, max_clicks: int, stop_iou: float) -> tuple[list[float], float, int | None]:
    """The robot user on the predictor's current image until IoU >= ``stop_iou`` or ``max_clicks``."""
    clicker = Clicker(gt)
    session = InteractiveSession(predictor)
    pred = np.zeros(gt.shape, bool)
    ious: list[float] = []
    first_ms = 0.0
    token = None
    for i in range(max_clicks):
        click = clicker.make_next_click(pred)
        if click is None:
            break
        t0 = time.perf_counter()
        p = session.add_click(click)
        if i == 0:
            first_ms = (time.perf_counter() - t0) * 1000
            token = p.info.get("first_token")
        pred = p.mask
        ious.append(iou(gt, pred))
        if ious[-1] >= stop_iou:
            break
    return ious, first_ms, token


def run_benchmark(
    predictor,
    root: Path,
    configs: dict[str, str],
    *,
    max_clicks: int = 20,
    limit: int | None = None,
    every: int = 1,
    noc_every: int = 1,
    local: int = 0,
    prompts: list | None = None,
    fit: bool = False,
    on_result: Callable[[], None] | None = None,
    on_partial: Callable[[dict], None] | None = None,
) -> dict:
    """Evaluate every target of the dataset folder ``root`` (:func:`~.cases.open_cases`) under ``configs``.

    ``predictor``: the engine (a RefinedPredictor); ``every``: every N-th target only (a spread-out
    subset for quick ablations); ``limit``: then the first N of them only; ``noc_every``: the
    robot clicks up to ``max_clicks`` on every N-th of those targets only, and once on the others
    (IoU after the first click is over all targets, NoC over the clicked-through ones);
    ``local``: local prototypes per reference; ``on_partial``: given the report so far after each
    image (``"complete": false``), so a long run leaves its numbers if stopped;
    ``prompts``: learned reference prompt encoders (:class:`~clickmask.learning.reference_prompts.ReferencePrompts`)
    for configurations with the ``learned`` use: each target is decoded with the first one not trained
    on its image (held-out; e.g. the two folds of a 2-fold split), and when some configuration is
    learned, targets on an image every encoder was trained on are left out of all configurations.
    ``fit``: the opposite choice, the encoder that *was* trained on the target's image (a fit to the
    test: its headroom, never a result).
    Returns the report (:func:`build_report`, ``"complete": true``).
    """
    root = Path(root)
    case_set = open_cases(root)
    learned = any(uses != NONE and ReferenceUses.parse(uses).learned for uses in configs.values())
    if learned and not prompts:
        raise ClickmaskError("a configuration uses 'learned' reference prompts: give the trained file(s)")
    held_out: dict[str, int] = {}  # image file name -> index of the prompt encoder not trained on it
    if learned:
        for c in case_set.cases:
            free = [i for i, p in enumerate(prompts or []) if (c.image.name in p.trained_on) == fit]
            if free:
                held_out[c.image.name] = free[0]
    cases = [c for c in case_set.cases if not learned or c.image.name in held_out]
    n_trained_on = len(case_set.cases) - len(cases)
    cases = cases[::max(1, every)]
    cases = cases[:limit] if limit is not None else cases
    wrapper = ReferencePredictor(predictor, prompts=prompts[0] if learned and prompts else None)
    results: dict[str, list[TargetResult]] = {name: [] for name in configs}
    by_image: dict[Path, list[Case]] = defaultdict(list)
    for c in cases:
        by_image[c.image].append(c)
    images: dict[Path, np.ndarray] = {}

    def image(path: Path) -> np.ndarray:
        if path not in images:
            images.clear() if len(images) > 4 else None
            images[path] = load_image(path)
        return images[path]

    full = {c.name for c in cases[::max(1, noc_every)]}
    options = {"local": local, "limit": limit, "every": every, "noc_every": noc_every}
    if learned:
        options["prompts"] = [dict(p.meta, pascalpart_images=sorted(p.trained_on)) for p in prompts or []]
        options["left_out_trained_on" if not fit else "left_out_not_trained_on"] = n_trained_on
        options["prompts_fit_to_test"] = fit

    def report(complete: bool) -> dict:
        return {**build_report(results, configs, case_set.skipped, len(case_set.cases), max_clicks, options,
                               kinds=case_set.kinds, dataset=root.name, protocol=case_set.protocol),
                "complete": complete}

    for image_path in sorted(by_image):
        for case in by_image[image_path]:
            gt, pos, neg = case_masks(case)
            reference = wrapper.reference_of(image(case.reference_image), pos, neg if neg.any() else None, local)
            wrapper.set_image(image(image_path))
            if learned:
                wrapper.set_prompts(prompts[held_out[image_path.name]])  # type: ignore[index]
            for name, uses in configs.items():
                if uses == NONE:
                    wrapper.set_reference(None)
                else:
                    wrapper.set_reference(reference, ReferenceUses.parse(uses))
                clicks = max_clicks if case.name in full else 1
                ious, ms, token = run_target(wrapper, gt, clicks, max(THRESHOLDS))
                results[name].append(TargetResult(case.name, case.kind, ious, ms, token, clicks > 1))
            if on_result is not None:
                on_result()
        if on_partial is not None:
            on_partial(report(False))
    return report(True)


def summarize(results: list[TargetResult], max_clicks: int) -> dict:
    """Mean IoU after the first click (all ``n`` targets), NoC and failures at :data:`THRESHOLDS` (the
    ``n_noc`` targets clicked through), first-click latency."""
    if not results:
        return {"n": 0}
    through = [r for r in results if r.full] if max_clicks > 1 else []
    out = {"n": len(results),
           "iou1": float(np.mean([r.ious[0] for r in results])),
           "n_noc": len(through),
           "noc": {threshold_key(t): (float(np.mean([noc(r.ious, t, max_clicks) for r in through]))
                                      if through else None) for t in THRESHOLDS},
           "failures": {threshold_key(t): sum(not reached(r.ious, t, max_clicks) for r in through)
                        for t in THRESHOLDS},
           "first_click_ms_median": float(np.median([r.first_ms for r in results]))}
    return out


def build_report(results: dict[str, list[TargetResult]], configs: dict[str, str], skipped: dict[str, str],
                 total_targets: int, max_clicks: int, options: dict,
                 kinds: tuple[str, ...] = ("part", "pair", "object"), dataset: str = "PascalPart",
                 protocol: str = "") -> dict:
    """The ``--json`` report: per configuration the summary over all targets and per kind
    (``kinds``: part / pair / object on a part dataset), the change against ``none`` when it ran,
    and per-target IoUs."""
    report: dict = {"dataset": dataset, "protocol": "reference (RefCut combination evaluation)"
                    + (f"; {protocol}" if protocol else ""),
                    "max_clicks": max_clicks, "stop_iou": max(THRESHOLDS), "options": options,
                    "targets": total_targets, "skipped": len(skipped), "skipped_targets": skipped,
                    "kinds": list(kinds), "configs": {}}
    for name, rs in results.items():
        entry = {"uses": configs[name], **summarize(rs, max_clicks),
                 "by_kind": {k: summarize([r for r in rs if r.kind == k], max_clicks) for k in kinds},
                 "per_target": {r.name: [round(v, 4) for v in r.ious] for r in rs}}
        report["configs"][name] = entry
    base = report["configs"].get(NONE)
    if base is not None and base["n"]:
        for name, entry in report["configs"].items():
            if entry["n"]:
                entry["vs_none"] = {"iou1_points": 100 * (entry["iou1"] - base["iou1"])}
                if entry["noc"]["85"] is not None and base["noc"]["85"]:
                    entry["vs_none"]["noc85_pct"] = 100 * (entry["noc"]["85"] - base["noc"]["85"]) / base["noc"]["85"]
    return report


def format_table(report: dict) -> str:
    """The terminal table: one row per configuration."""
    first = next(iter(report["configs"].values()), {"n": 0, "n_noc": 0})
    lines = [f"{report['dataset']} reference benchmark: {report['targets']} targets with a reference "
             f"({report['skipped']} skipped: no usable reference); IoU@1 over {first['n']}, "
             f"NoC over {first.get('n_noc', 0)} clicked through (max {report['max_clicks']} clicks)",
             f"  {'config':22s} {'uses':34s} {'IoU@1':>6s} {'NoC@80':>7s} {'NoC@85':>7s} {'NoC@90':>7s} "
             f"{'>=20@85':>8s} {'dIoU@1':>7s} {'dNoC@85':>8s} {'ms@1':>6s}"]
    for name, e in report["configs"].items():
        if not e["n"]:
            continue
        d = e.get("vs_none", {})
        nocs = " ".join(f"{e['noc'][k]:7.2f}" if e["noc"][k] is not None else f"{'-':>7s}" for k in ("80", "85", "90"))
        dnoc = f"{d['noc85_pct']:+7.1f}%" if "noc85_pct" in d else f"{'-':>8s}"
        lines.append(f"  {name:22s} {e['uses']:34s} {100 * e['iou1']:6.1f} {nocs} {e['failures']['85']:8d} "
                     f"{d.get('iou1_points', 0.0):+7.1f} {dnoc} {e['first_click_ms_median']:6.0f}")
    for kind in report.get("kinds", ("part", "pair", "object")):
        row = "  ".join(f"{name}: {100 * e['by_kind'][kind]['iou1']:.1f}" for name, e in report["configs"].items()
                        if e["by_kind"].get(kind, {}).get("n"))
        if row:
            lines.append(f"  {kind:7s} IoU@1  {row}")
    return "\n".join(lines)
