"""``clickmask serve``: the annotation web app on a folder of images."""

from __future__ import annotations

import argparse
from pathlib import Path

from clickmask.cli.options import add_infer, add_model


def add_parser(sub) -> None:
    serve = sub.add_parser("serve", help="annotate a folder of images in the browser")
    serve.set_defaults(run=run)
    serve.add_argument("path", nargs="?", type=Path, help="folder of images (or an existing project)")
    serve.add_argument("--sample", action="store_true",
                       help="serve the sample project (scikit-image's images; PATH = where to write it)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None,
                       help="port (default 8765, or a free one if it is taken; 0 = any free port)")
    serve.add_argument("--token", default=None, help="access token (required for a non-localhost --host)")
    serve.add_argument("--db", default=None, help="SQLAlchemy database URL (default: PATH/.clickmask/project.db)")
    serve.add_argument("--no-browser", action="store_true", help="do not open a browser")
    add_infer(serve)
    add_model(serve)


def run(args: argparse.Namespace) -> int:
    from clickmask.server.run import serve  # the web stack loads only for this command

    serve(args.path, host=args.host, port=args.port, token=args.token, model=args.model,
          open_browser=not args.no_browser, sample=args.sample, url=args.db, infer=args.infer)
    return 0
