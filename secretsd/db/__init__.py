"""secretsd's own database: tokens, audit log and the change feed (SQLAlchemy + Alembic)."""
