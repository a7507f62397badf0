"""Each side's migration history builds exactly the schema its tables declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from accrual.app import Runtime
from accrual.billing.adapters.tables import metadata as billing_metadata
from accrual.console.adapters.tables import metadata as console_metadata


def test_migrations_match_the_declared_tables(runtime: Runtime) -> None:
    for engine, metadata, side in ((runtime.console.engine, console_metadata, "console"),
                                   (runtime.billing.engine, billing_metadata, "billing")):
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True, "version_table": f"alembic_version_{side}"})
            differences = compare_metadata(context, metadata)
        assert differences == [], f"{engine.url}: {differences}"


def test_migrating_twice_changes_nothing(runtime: Runtime) -> None:
    runtime.migrate()
    runtime.migrate()
