"""The sequential benchmark (SIIS protocol): one command, the app's configuration by default.

Objects of each category are annotated in dataset order by the robot user;
``learn`` says which of the app's learning parts are on: ``icp`` (first-click
proposals from the object map and the click bank), ``opo`` (the per-category
adapter trained online, gate included) and ``granularity`` (the first-click
memory). The empty set is the baseline.
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from clickmask.engine.predictor import Predictor
from clickmask.errors import ClickmaskError
from clickmask.evaluation.sequential.report import build_report
from clickmask.evaluation.sequential.runner import SequentialOptions, run_sequences
from clickmask.evaluation.sequential.sequences import SequenceOptions, build_sequences, select_sequences
from clickmask.learning.granularity import RULE as GRANULARITY_RULE
from clickmask.learning.opo import OPOConfig


def run_benchmark(
    predictor: Predictor,
    dataset: str,
    root: Path,
    learn: set[str],
    *,
    max_clicks: int = 20,
    mask_feedback: bool = True,
    limit: int | None = None,
    categories: list[str] | None = None,
    described: dict | None = None,
    opo_config: OPOConfig = OPOConfig(),
) -> dict:
    """Run the benchmark on ``root/dataset`` and return its report (see :mod:`.report`).

    ``limit``: only the first N sequences; ``categories``: only these;
    ``described``: more options to record in the report (the inference options).
    """
    sequences = build_sequences(root, dataset, SequenceOptions(), limit=limit)
    if categories:
        sequences = select_sequences(sequences, categories, dataset)
    options = SequentialOptions(max_clicks=max_clicks, mask_feedback=mask_feedback,
                                icp="icp" in learn, granularity="granularity" in learn)
    adapter = None
    if "opo" in learn:
        try:
            from clickmask.evaluation.sequential.online import OnlineAdapter  # PyTorch: only with OPO
        except ImportError as exc:
            raise ClickmaskError(f"OPO needs PyTorch: pip install 'clickmask[learn]', or leave opo out of "
                                 f"--learn ({exc})") from None
        adapter = OnlineAdapter(predictor, opo_config)
    total = sum(len(s.samples) for s in sequences)
    with tqdm(total=total, desc=f"{dataset} sequential", unit="obj", disable=None) as bar:
        results = run_sequences(predictor, sequences, options, adapter, on_result=lambda r: bar.update(1))
    recorded = {"mask_feedback": mask_feedback, "icp": options.icp, "opo": adapter is not None,
                "granularity": options.granularity, **(described or {})}
    if options.granularity:
        recorded["granularity_rule"] = GRANULARITY_RULE
    if adapter is not None:
        recorded["opo_config"] = adapter.describe()
    report = build_report(results, dataset, predictor.model_id, recorded, max_clicks, options.stop_iou)
    if adapter is not None and opo_config.gate:
        report["opo_gate"] = adapter.gate_log()
    return report
