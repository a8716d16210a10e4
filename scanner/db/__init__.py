"""The database adapter (SQLAlchemy 2 async): schema, migrations, inventory, policies, tokens.

Modules: ``engine`` (the ``Database`` handle), ``tables`` (the schema),
``inventory``, ``policies``, ``tokens``, ``audit``, ``pagination``; scan
storage lives in ``scans``.
"""

from __future__ import annotations

from scanner.db.engine import Database, SchemaStatus

__all__ = ["Database", "SchemaStatus"]
