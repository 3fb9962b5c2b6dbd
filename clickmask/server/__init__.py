"""The local web app: a FastAPI server over the project store and the engine."""

from clickmask.server.app import create_app
from clickmask.server.state import AppState

__all__ = ["create_app", "AppState"]
