"""A 20000 x 20000 image in the app, against a 2000 x 2000 one: open, first view, memory, first click.

The images are synthetic GeoTIFFs (``tests/large_files.py``: a textured ground,
every pixel written, with square "buildings" of 60..140 px), made once in
``--work``. Each run starts ``clickmask serve`` on a project holding one image,
as its own process, and measures through HTTP as the browser calls it:

* ``open_ms``: ``POST /api/images/{id}/open`` (the header; a large image's
  overviews start in the background);
* ``first_view_ms``: from before the open until the fitted view's pixels are
  in: the tiles a 1600 x 900 canvas shows (the coarsest level and the visible
  tiles of the level that matches the zoom, fetched one after another), or the
  whole image's JPEG for the small image;
* ``click_ms``: the first click on a building, its window's (or image's)
  embedding included (each run starts without cached embeddings); ``click_ready_ms``: the same click again with the
  embedding ready (the object reset in between); ``iou``: that mask against the
  building; ``export_ms``: the object finished, then a GeoJSON export of the project;
* ``peak_rss_mb``: the server's peak resident memory (VmHWM) over the run.

The large image runs three times: ``cold`` (no overviews in the cache: the
first view waits for them), ``warm`` (made by the cold run) and ``cog`` (the
same pixels as a Cloud-Optimized GeoTIFF, which carries its own overviews).

Run: ``python benchmarks/large_image.py --json benchmarks/results/large_image.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from large_files import Square, write_large_geotiff  # noqa: E402

from clickmask.geometry import decode_rle_window  # noqa: E402

CANVAS = (1600, 900)
VIEW = 1200  # the visible image pixels when the user clicks a building (zoomed in on it)


def buildings(size: int, seed: int = 0) -> list[Square]:
    """Square buildings of 60..140 px on a grid with jitter (one per 600 px cell)."""
    rng = np.random.default_rng(seed)
    out = []
    for y in range(300, size - 300, 600):
        for x in range(300, size - 300, 600):
            side = int(rng.integers(60, 141))
            color = tuple(int(v) for v in rng.integers(20, 236, 3))
            out.append(Square(x + int(rng.integers(-150, 150)), y + int(rng.integers(-150, 150)), side, color))
    return out


def make_image(work: Path, size: int) -> tuple[Path, list[Square], float]:
    """The synthetic image of ``size`` (made once), its buildings and the seconds it took (0: reused)."""
    path = work / f"image-{size}" / f"ground-{size}.tif"
    squares = buildings(size)
    if path.is_file():
        return path, squares, 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tmp = path.with_name(".partial.tif")
    write_large_geotiff(tmp, size, (0, 0, size, size), squares, chunk=2048)
    os.replace(tmp, path)
    return path, squares, time.perf_counter() - t0


def make_cog(image: Path) -> tuple[Path, float]:
    """A Cloud-Optimized GeoTIFF copy of ``image`` (its own overviews), made once; and the seconds it took."""
    import rasterio
    from rasterio.shutil import copy as gdal_copy

    cog = image.with_name(image.stem + "-cog.tif")
    if cog.is_file():
        return cog, 0.0
    t0 = time.perf_counter()
    tmp = cog.with_name(".partial-cog.tif")
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS", GDAL_CACHEMAX=256):
        gdal_copy(str(image), str(tmp), driver="COG", compress="deflate", level=1, overview_resampling="average",
                  BIGTIFF="YES")
    os.replace(tmp, cog)
    return cog, time.perf_counter() - t0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``clickmask serve`` on a project folder, as a child process."""

    def __init__(self, project: Path, home: Path) -> None:
        self.port = _free_port()
        exe = Path(sys.executable).with_name("clickmask")
        env = {**os.environ, "CLICKMASK_HOME": str(home)}
        self.proc = subprocess.Popen([str(exe), "serve", str(project), "--port", str(self.port), "--no-browser"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                self.get("/api/status")
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start")

    def request(self, method: str, path: str, body: dict | None = None) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json", "X-Clickmask-Tab": "bench"})
        with urllib.request.urlopen(req, timeout=600) as res:
            return res.read()

    def get(self, path: str) -> bytes:
        return self.request("GET", path)

    def json(self, method: str, path: str, body: dict | None = None):
        return json.loads(self.request(method, path, body) or b"null")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def fitted_tiles(info: dict) -> list[tuple[int, int, int]]:
    """The tiles the browser's fitted view fetches (canvas.js: the coarsest level and the zoom's level)."""
    w, h, tile, levels = info["width"], info["height"], info["tile"], info["levels"]
    scale = min(CANVAS[0] / w, CANVAS[1] / h) * 0.96
    level = max(0, min(levels - 1, math.floor(math.log2(1 / scale))))
    out = []
    for lv in sorted({levels - 1, level}, reverse=True):
        span = tile * 2 ** lv
        out += [(lv, c, r) for r in range(math.ceil(h / span)) for c in range(math.ceil(w / span))]
    return out


def run(image: Path, squares: list[Square], label: str, work: Path, home: Path) -> dict:
    project = work / f"project-{label}"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    os.link(image, project / image.name)
    shutil.rmtree(home / "embeddings", ignore_errors=True)  # every run computes its embeddings
    server = Server(project, home)
    try:
        image_id = server.json("GET", "/api/images")["images"][0]["id"]
        t0 = time.perf_counter()
        info = server.json("POST", f"/api/images/{image_id}/open")
        open_ms = (time.perf_counter() - t0) * 1000
        tiles = info.get("tiles")
        if tiles:
            for lv, c, r in fitted_tiles(tiles):
                server.get(f"/api/images/{image_id}/tiles/{lv}/{c}/{r}.jpg")
        else:
            server.get(f"/api/images/{image_id}/file")
        first_view_ms = (time.perf_counter() - t0) * 1000
        size = info["width"]
        target = min(squares, key=lambda s: abs(s.x - size * 0.6) + abs(s.y - size * 0.6))
        cx, cy = target.x + target.side / 2, target.y + target.side / 2
        view = [cx - VIEW / 2, cy - VIEW / 2, cx + VIEW / 2, cy + VIEW / 2]
        clicks = []
        for _ in range(2):
            server.request("DELETE", f"/api/images/{image_id}/clicks")
            t1 = time.perf_counter()
            server.json("POST", f"/api/images/{image_id}/clicks", {"x": cx, "y": cy, "positive": True, "view": view})
            clicks.append((time.perf_counter() - t1) * 1000)
        rle = server.json("GET", f"/api/images/{image_id}/mask?format=rle")["rle"]
        box = (target.x - 50, target.y - 50, target.x + target.side + 50, target.y + target.side + 50)
        mask = decode_rle_window(rle, box)
        truth = target.mask(mask.shape, box[:2])
        iou = float((mask & truth).sum() / max(1, (mask | truth).sum()))
        category = server.json("POST", "/api/categories", {"name": "building"})["id"]
        server.json("POST", f"/api/images/{image_id}/finish", {"category_id": category})
        t2 = time.perf_counter()
        server.json("POST", "/api/export", {"format": "geojson"})
        export_ms = (time.perf_counter() - t2) * 1000
        return {"run": label, "size": f"{size}x{info['height']}", "tiled": bool(tiles),
                "tiles_fetched": len(fitted_tiles(tiles)) if tiles else 0, "open_ms": round(open_ms, 1),
                "first_view_ms": round(first_view_ms, 1), "click_ms": round(clicks[0], 1),
                "click_ready_ms": round(clicks[1], 1), "object_px": target.side, "iou": round(iou, 4),
                "export_ms": round(export_ms, 1),
                "peak_rss_mb": round(server.peak_rss_mb(), 1)}
    finally:
        server.stop()
        shutil.rmtree(project, ignore_errors=True)


def measure(work: Path, large: int, small: int) -> dict:
    from clickmask.paths import models_dir

    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"  # the servers' cache: the installed models, fresh embeddings and pyramids
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    (home / "models").symlink_to(models_dir().resolve())
    big, big_squares, made_big = make_image(work, large)
    little, little_squares, made_little = make_image(work, small)
    cog, made_cog = make_cog(big)
    rows = []  # cold: no overviews made yet (a fresh cache); warm: the cold run's
    for label, image, squares in (("cold", big, big_squares), ("warm", big, big_squares),
                                  ("cog", cog, big_squares), ("small", little, little_squares)):
        rows.append(run(image, squares, label, work, home))
        print(json.dumps(rows[-1]), file=sys.stderr)
    return {"benchmark": "large_image", "rows": rows, "canvas": list(CANVAS), "view_px": VIEW,
            "image_seconds": {"large": round(made_big, 1), "small": round(made_little, 1), "cog": round(made_cog, 1)},
            "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
            "command": f"python benchmarks/large_image.py --size {large} --small {small}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/clickmask-large-bench"),
                        help="where the synthetic images are made (once) and the projects run")
    parser.add_argument("--size", type=int, default=20000, help="side of the large image")
    parser.add_argument("--small", type=int, default=2000, help="side of the image to compare with")
    parser.add_argument("--json", dest="json_path", type=Path)
    args = parser.parse_args(argv)
    from app_latency import run_and_write  # the same JSON writer as the app's latency benchmark

    return run_and_write(lambda: measure(args.work, args.size, args.small), args.json_path)


if __name__ == "__main__":
    sys.exit(main())
