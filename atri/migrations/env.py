"""Alembic's entry point. The app runs it on start with its own connection (atri.store.Store.migrate);
`alembic -c atri/migrations/alembic.ini revision --autogenerate -m "…"` uses ATRI_DATABASE_URL."""
from __future__ import annotations

import os

from alembic import context

from atri.store import Base, make_engine

config = context.config


def run(connection) -> None:
    # Batch mode: SQLite alters a table by copying it, which Alembic does for us.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


shared = config.attributes.get("connection")
if shared is not None:
    run(shared)
else:
    with make_engine(os.environ.get("ATRI_DATABASE_URL") or "sqlite:///data/atri.db").begin() as connection:
        run(connection)
