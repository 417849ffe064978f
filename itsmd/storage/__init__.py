"""Storage: SQLAlchemy tables, the SQL store, the group-committing writer, Alembic migrations."""
