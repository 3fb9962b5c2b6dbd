"""Categories and what each has learned (proposals, adaptation, first-click memory)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from clickmask.project.errors import ConflictError
from clickmask.server.routes.common import DbInt, check_category, writable_path
from clickmask.server.security import project_file
from clickmask.server.state import AppState


class CategoryIn(BaseModel):
    name: str
    color: str | None = None


class CategoryPatch(BaseModel):
    name: str | None = None
    color: str | None = None


class FileIn(BaseModel):
    path: str = "categories.json"
    overwrite: bool = False  # saving: replace an existing file (else 409)


def router(state: AppState) -> APIRouter:
    """The routes, bound to the server's state."""
    api = APIRouter()
    store = state.store

    @api.get("/api/categories")
    def categories():
        return store.list_categories()

    @api.post("/api/categories")
    def add_category(body: CategoryIn):
        return store.add_category(body.name, body.color)

    @api.patch("/api/categories/{category_id}")
    def patch_category(category_id: DbInt, body: CategoryPatch):
        return store.update_category(category_id, body.name, body.color)

    @api.delete("/api/categories/{category_id}")
    def delete_category(category_id: DbInt):
        store.delete_category(category_id)
        # what it learned goes with it (a new category may get its id again)
        state.adaptation.reset(category_id)
        state.granularity.reset(category_id)
        state.proposals.reset(category_id)
        state.references.forget(category_id)
        return {"deleted": category_id}

    @api.post("/api/categories/save")
    def save_categories(body: FileIn):
        path = writable_path(store.root, body.path)
        if path.exists() and not body.overwrite:
            raise ConflictError(f"{path.relative_to(store.root).as_posix()} exists: replace it?")
        store.save_categories(path)
        return {"path": path.relative_to(store.root).as_posix()}

    @api.post("/api/categories/load")
    def load_categories(body: FileIn):
        return store.load_categories(project_file(store.root, body.path))

    @api.delete("/api/categories/{category_id}/click-bank")
    def reset_click_bank(category_id: DbInt):
        check_category(store, category_id)
        state.proposals.reset(category_id)
        return {"category_id": category_id, "bank_size": 0}

    @api.get("/api/categories/{category_id}/adaptation")
    def adaptation(category_id: DbInt):
        check_category(store, category_id)
        return {**state.adaptation.status(category_id), "first_click": state.granularity.status(category_id),
                "proposals": state.proposals.size(category_id)}

    @api.delete("/api/categories/{category_id}/adaptation")
    def reset_adaptation(category_id: DbInt):
        """Forget everything the category learned: its adapter, first-click memory and proposals."""
        check_category(store, category_id)
        state.granularity.reset(category_id)
        state.proposals.reset(category_id)
        return {**state.adaptation.reset(category_id), "first_click": state.granularity.status(category_id),
                "proposals": state.proposals.size(category_id)}

    return api
