"""The ``clickmask`` command line: one module per command.

``models`` (pull / list / add / remove), ``segment`` (one image, given clicks),
``serve`` (the annotation web app), ``export`` / ``import`` (project
annotations), ``eval`` (the NoC and sequential benchmarks), ``eval-video``
(the DAVIS interactive benchmark with propagation), ``ablate``
(inference configurations side by side), ``bench`` (latency), ``train`` (an
embedding adapter), ``train-reference`` (learned reference prompts), ``demo`` (the bundled samples). Each module has
``add_parser(subparsers)`` and ``run(args) -> exit code``. Every user error
prints one line ``clickmask: error: ...`` and exits with 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from clickmask import __version__
from clickmask.cli import ablate, bench, demo, eval_video, evaluate, exchange, models, segment, serve, train, train_reference
from clickmask.errors import ClickmaskError

COMMANDS = (models, segment, serve, exchange, evaluate, eval_video, ablate, bench, train, train_reference, demo)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (``args.run`` is the chosen command's entry point)."""
    parser = argparse.ArgumentParser(prog="clickmask", description="Annotate segmentation datasets with clicks.")
    parser.add_argument("--version", action="version", version=f"clickmask {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``clickmask`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="clickmask: %(levelname)s: %(message)s",
    )
    try:
        return args.run(args)
    except ClickmaskError as exc:
        print(f"clickmask: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clickmask: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
