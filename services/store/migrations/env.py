"""Alembic's environment for the SQL stores: migrations run inside the store's own transaction.

:class:`erchub.services.store.sql.SqlStore` calls ``alembic.command.upgrade(config, "head")`` when
it opens, with its connection in ``config.attributes["connection"]`` and a transaction already
begun (an immediate one on SQLite, one holding an advisory lock on PostgreSQL), so that several
processes opening the same database at once apply each migration exactly once. A new migration
is a new file in ``versions/`` whose ``down_revision`` is the current head.
"""

from __future__ import annotations

from alembic import context

context.configure(connection=context.config.attributes["connection"], target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
