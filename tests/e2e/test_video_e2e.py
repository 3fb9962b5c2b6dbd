"""Real browser: a video in a project: click an object on one frame, propagate, correct the frame the
pointer names, propagate again and export a DAVIS PNG sequence (read back with Pillow)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sequence_files import disk_centre, disk_mask, write_video  # noqa: E402
from page_helpers import export_with_button, page_point  # noqa: E402


@pytest.fixture()
def video_server(tmp_path):
    from clickmask.engine.loader import load_predictor
    from clickmask.project import open_project
    from clickmask.server import AppState, create_app
    from clickmask.server.live import LiveServer

    project = tmp_path / "project"
    project.mkdir()
    write_video(project / "ball.mp4")
    store = open_project(project)
    store.add_category("ball")
    state = AppState(store=store, predictor=load_predictor(None))
    live = LiveServer(create_app(state))
    server = live.__enter__()
    yield server, store, state
    live.__exit__(None, None, None)
    state.close()



def _wait_job_done(page, total: int) -> None:
    page.wait_for_function(f"(() => {{ const el = document.querySelector('#job-text'); "
                           f"return el.dataset.running === '0' && el.textContent.includes('{total}/{total}'); }})()",
                           timeout=240_000)


def test_video_click_propagate_correct_export(browser, video_server):
    server, store, state = video_server
    errors: list[str] = []
    page = browser.new_page()
    page.set_default_timeout(90_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.get_by_test_id("sequence").first.click()
    page.get_by_test_id("timeline").wait_for(state="visible")
    page.wait_for_function("window.cm.viewer.width === 160 && window.cm.sequence && window.cm.sequence.frame === 0")
    assert page.locator("#timeline-cells .cell").count() == 8

    # frame 1: a click on the ball, category 1, Space: track 1 drawn there
    page.keyboard.press("1")
    page.mouse.click(*page_point(page, *disk_centre(0)))
    page.wait_for_function("window.cm.sequence.clicks.length === 1 && window.cm.viewer.maskNode !== null")
    page.keyboard.press("Space")
    page.wait_for_function("window.cm.sequence.info.tracks.length === 1")
    assert page.locator("#timeline-cells .cell.annotated").count() == 1

    # propagate: progress shown, every frame gets a mask, the pointer names a frame to check
    page.get_by_test_id("propagate").click()
    _wait_job_done(page, 7)
    page.wait_for_function("document.querySelectorAll('#timeline-cells .cell.empty').length === 0")
    page.get_by_test_id("pointer").click()
    page.wait_for_function("window.cm.sequence.frame > 0")
    frame = page.evaluate("window.cm.sequence.frame")
    page.wait_for_function("window.cm.viewer.seqLayer.getChildren().length === 1")

    # correct that frame: a click on the ball there, Space into the selected track; propagate again
    page.mouse.click(*page_point(page, *disk_centre(frame)))
    page.wait_for_function("window.cm.sequence.clicks.length === 1")
    page.keyboard.press("Space")
    page.wait_for_function(f"window.cm.sequence.info.tracks[0].annotated.includes({frame})")
    page.get_by_test_id("propagate").click()
    page.wait_for_function("document.querySelector('#job-text').dataset.running === '0' && "
                           "!document.querySelector('#job-text').textContent.startsWith('propagated 7/7')")
    assert "failed" not in page.get_by_test_id("job-text").text_content()

    # scrub with the timeline and the keys
    page.locator("#timeline-cells .cell").nth(6).click()
    page.wait_for_function("window.cm.sequence.frame === 6")
    page.keyboard.press("d")
    page.wait_for_function("window.cm.sequence.frame === 7")

    # export the DAVIS PNG sequence
    folder, _ = export_with_button(page, "davis-png", "sequence-export-format", "sequence-export")
    pngs = sorted(folder.rglob("*.png"))
    assert len(pngs) == 8
    from PIL import Image

    track = state.sequences.store.tracks(1)[0]["id"]
    for k in (2, 7):
        with Image.open(pngs[k]) as img:
            assert img.mode == "P"
            labels = np.asarray(img)
        got, truth = labels == track, disk_mask(k)
        assert (got & truth).sum() / (got | truth).sum() > 0.6, k
    assert track == 1

    # and the PNGs read back as a new track, from the panel
    page.get_by_test_id("sequence-import-folder").fill(str((folder / "ball").relative_to(store.root)))
    page.get_by_test_id("sequence-import").click()
    page.wait_for_function("window.cm.sequence.info.tracks.length === 2")
    assert page.get_by_test_id("track").count() == 3  # two tracks and "+ new track"
    assert not errors, errors
