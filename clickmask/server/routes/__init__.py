"""The JSON API, one module per resource; each has ``router(state) -> APIRouter``."""
