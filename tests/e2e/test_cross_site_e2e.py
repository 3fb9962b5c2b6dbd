"""Real browser: a page of another origin (another port of the same host) cannot change the project."""

from __future__ import annotations

import functools
import http.server
import threading

import numpy as np
import pytest
from PIL import Image

from clickmask.engine.loader import load_predictor
from clickmask.project import open_project
from clickmask.server import AppState, create_app
from clickmask.server.live import LiveServer

EVIL = """<!doctype html><html><body>
<form id="f" method="POST" action="{target}api/images/{image}/undo" target="sink"></form>
<iframe name="sink"></iframe>
<script>
window.done = (async () => {{
  const out = [];
  for (const path of ["undo", "undo", "open"]) {{
    try {{ await fetch("{target}api/images/{image}/" + path, {{method: "POST", mode: "no-cors"}}); out.push("sent"); }}
    catch (e) {{ out.push("blocked"); }}
  }}
  try {{  // a custom header forces a CORS preflight, which the server does not grant
    await fetch("{target}api/images/{image}/undo", {{method: "POST", headers: {{"X-Clickmask-Tab": "x"}}}});
    out.push("sent");
  }} catch (e) {{ out.push("blocked"); }}
  document.getElementById("f").submit();
  await new Promise((r) => setTimeout(r, 500));
  return out;
}})();
</script></body></html>"""


@pytest.mark.parametrize("token, evil_host", [(None, "localhost"), ("tok", "127.0.0.1")])
def test_page_on_another_port_cannot_undo(browser, tmp_path, token, evil_host):
    """Without a token from a name that resolves to loopback; with one from another port of the same
    host, after the user opened the app (so the browser holds its token cookie)."""
    project = tmp_path / "project"
    project.mkdir()
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(project / "a.png")
    store = open_project(project)
    image = store.list_images()[0]["id"]
    mask = np.zeros((40, 60), bool)
    mask[5:20, 5:25] = True
    store.add_instance(image, mask)
    store.add_instance(image, ~mask)
    store.undo(image)  # one redo step waits: the user's next edit would drop it for good
    state = AppState(store=store, predictor=load_predictor("grabcut"), token=token)

    site = tmp_path / "site"
    site.mkdir()
    with LiveServer(create_app(state)) as server:
        (site / "evil.html").write_text(EVIL.format(target=server.url, image=image))
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
        other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=other.serve_forever, daemon=True).start()
        try:
            page = browser.new_page()
            if token:
                page.goto(f"{server.url}?token={token}")
                page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            page.goto(f"http://{evil_host}:{other.server_address[1]}/evil.html")
            sent = page.evaluate("window.done")
            page.close()
        finally:
            other.shutdown()
            other.server_close()
    assert sent[:3] == ["sent"] * 3 and sent[3] == "blocked", sent  # the requests did leave the browser
    assert len(store.list_instances(image)) == 1
    assert store.history_state(image) == {"undo": 1, "redo": 1}
