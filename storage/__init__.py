"""Rows, repositories and migrations (SQLAlchemy 2, Alembic)."""
