"""The package's layering (docs/architecture.md): checked on the source, so a wrong import fails here."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "clickmask"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "node_modules" not in path.parts:
            yield path.relative_to(PACKAGE).parts, _imports(path)


def test_only_the_command_line_and_the_evaluation_import_the_evaluation():
    wrong = [("/".join(parts), name) for parts, names in _modules() if parts[0] not in ("cli", "evaluation")
             for name in names if name == "clickmask.evaluation" or name.startswith("clickmask.evaluation.")]
    assert not wrong, wrong


def test_the_package_never_imports_the_benchmark_scripts():
    wrong = [("/".join(parts), name) for parts, names in _modules()
             for name in names if name.split(".")[0] in ("benchmarks", "app_latency", "render")]
    assert not wrong, wrong


def test_lower_layers_do_not_import_the_server_or_the_command_line():
    upper = ("clickmask.server", "clickmask.cli")
    wrong = [("/".join(parts), name) for parts, names in _modules()
             if parts[0] not in ("server", "cli", "__main__.py") for name in names if name.startswith(upper)]
    assert not wrong, wrong
