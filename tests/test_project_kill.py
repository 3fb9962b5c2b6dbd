"""Killing a writer at random moments never corrupts the database or loses a finished object."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image

from clickmask.project import open_project

WRITER = r"""
import sys, numpy as np
from clickmask.project import open_project
store = open_project(sys.argv[1])
rng = np.random.default_rng(int(sys.argv[2]))
image_id = store.list_images()[0]["id"]
while True:
    mask = np.zeros((40, 50), bool)
    r, c = rng.integers(0, 30), rng.integers(0, 40)
    mask[r:r + 8, c:c + 9] = True
    inst = store.add_instance(image_id, mask)
    inst = store.update_instance(inst["id"], inst["version"], hidden=True)
    print(inst["id"], r, c, flush=True)
"""


def test_sigkill_at_random_moments_keeps_finished_objects(tmp_path):
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "a.png")
    open_project(tmp_path).close()
    rng = random.Random(3)
    finished: dict[int, tuple[int, int]] = {}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for round_ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(round_)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        first = proc.stdout.readline()  # wait until it writes
        assert first, proc.stderr.read()
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        for line in (first + out).splitlines(keepends=True):
            if not line.endswith("\n"):
                continue  # killed while printing: the report is cut, not the object
            iid, r, c = map(int, line.split())
            finished[iid] = (r, c)
        assert proc.returncode == -signal.SIGKILL

        store = open_project(tmp_path)
        assert store.integrity_ok()
        stored = {i["id"]: i for i in store.list_instances(1)}
        for iid, (r, c) in finished.items():
            assert iid in stored, f"finished object {iid} lost after kill {round_}"
            assert stored[iid]["hidden"] and stored[iid]["bbox"] == [c, r, 9, 8]
        store.close()
    assert len(finished) > 4
