"""Alembic environment of the console's own migration history."""

from alembic import context

from accrual.console.adapters.tables import metadata

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=config.attributes.get("version_table", "alembic_version_console"),
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
