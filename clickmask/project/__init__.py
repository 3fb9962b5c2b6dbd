"""The project store: categories, images, instances, edit history and settings in one database.

A project is a folder of images plus ``<folder>/.clickmask/project.db`` (SQLite,
WAL mode) by default; any SQLAlchemy URL (e.g. PostgreSQL) works with ``url=``.
"""

from clickmask.project.errors import ConflictError, NotFoundError
from clickmask.project.store import ProjectStore, open_project

__all__ = ["ProjectStore", "open_project", "ConflictError", "NotFoundError"]
