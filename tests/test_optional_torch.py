"""PyTorch is optional: the app, eval and the exports import and run without it (``clickmask[learn]`` adds it)."""

from __future__ import annotations

import subprocess
import sys

WITHOUT_TORCH = "import sys; sys.modules['torch'] = None  # 'import torch' now fails, find_spec gives None\n"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH + code], capture_output=True, text=True, timeout=300)


def test_the_app_eval_and_exports_import_without_torch():
    done = _run(
        "import clickmask.cli, clickmask.server.app, clickmask.server.state, clickmask.formats\n"
        "import clickmask.evaluation.sequential.benchmark, clickmask.learning.adapted, clickmask.learning.opo\n"
        "from clickmask.server.adaptation import AdaptationService, opo_unavailable\n"
        "from clickmask.engine.loader import load_predictor\n"
        "print(opo_unavailable(load_predictor('grabcut')))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "PyTorch is not installed"


def test_train_without_torch_is_a_one_line_error(tmp_path):
    done = _run(f"from clickmask.cli import main; sys.exit(main(['train', '--out', {str(tmp_path)!r}]))")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("clickmask: error: training needs PyTorch: pip install 'clickmask[learn]'")
    assert done.stderr.count("\n") == 1
