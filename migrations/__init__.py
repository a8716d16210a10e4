"""The Alembic migrations, shipped inside the package as ``scanner.migrations``."""
