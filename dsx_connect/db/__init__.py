"""The SQL results history: schema (SQLAlchemy Core), engines and Alembic migrations shipped here."""
