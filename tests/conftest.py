"""Shared fixtures: the installed default model and the benchmark data folder.

Outside CI, tests that need the model or ../shared/data are skipped when those
are absent. Under CI (``CI`` set) a missing model or data folder is a failure,
so an integration test can never pass by not running.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clickmask.errors import ClickmaskError

REPO = Path(__file__).resolve().parents[1]


def _missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required under CI)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def model_spec():
    """The verified default model spec (run `clickmask models pull` first)."""
    from clickmask.models.registry import resolve_model

    try:
        return resolve_model(None)
    except ClickmaskError as exc:
        _missing(str(exc))


@pytest.fixture(scope="session")
def sam_predictor(model_spec):
    """A SAM ONNX predictor with a memory-only embedding cache."""
    from clickmask.engine.embedding_cache import EmbeddingCache
    from clickmask.engine.sam_onnx import SamOnnxPredictor

    return SamOnnxPredictor(model_spec, EmbeddingCache(None, max_items=4))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The benchmark data root ($CLICKMASK_DATA or ../shared/data)."""
    env = os.environ.get("CLICKMASK_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    if not (root / "GrabCut").is_dir():
        _missing(f"benchmark data not found at {root}")
    return root


@pytest.fixture(scope="session")
def frozen_decoder(model_spec):
    """The PyTorch twin of the default model's decoder, frozen (OPO trains adapters only)."""
    pytest.importorskip("torch")
    from clickmask.learning.trainer import load_frozen_decoder

    return load_frozen_decoder(model_spec)
