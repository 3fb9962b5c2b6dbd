"""A TestClient that sends what the clickmask page sends with every request (the tab header)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from clickmask.server import create_app


def page_client(state, tab: str = "") -> TestClient:
    """The app of ``state`` as the clickmask page calls it (``X-Clickmask-Tab`` on every request)."""
    return TestClient(create_app(state), headers={"X-Clickmask-Tab": tab})
