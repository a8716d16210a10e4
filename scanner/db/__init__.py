"""The database adapter (SQLAlchemy 2 async): storage only, rows in and records out.

Where things live: the ``Database`` handle and migrations (``engine``), the
schema (``tables``), one module of queries per thing stored (``inventory``,
``policies``, ``runs``, ``findings``, ``hooks``, ``schedules``, ``tokens``,
``audit``), planning runs into work and the lease SQL (``work``,
``leases``), keyset pages (``pagination``). What may be stored is decided by
``scanner.core``; the use cases that combine these queries, validate and
audit are ``scanner.usecases``. ``db`` imports only ``core``, ``errors``,
``settings`` and itself (``tests/test_layers.py``).
"""

from __future__ import annotations

from scanner.db.engine import Database, SchemaStatus

__all__ = ["Database", "SchemaStatus"]
