"""the job queue: procrastinate's schema (tables procrastinate_*), as shipped by the pinned procrastinate 3.10

Revision ID: 0005
Revises: 0004

A later procrastinate release brings its own SQL migrations (procrastinate/sql/migrations): apply them in a new
Alembic revision before raising the pin in pyproject.toml.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from procrastinate.schema import SchemaManager

    # the raw DBAPI cursor: the schema text holds '%' and ':' that a parameter-style layer would misread
    cursor = op.get_bind().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(SchemaManager.get_schema())


def downgrade() -> None:
    op.execute("drop table if exists procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs, "
               "procrastinate_workers cascade")
    op.execute("drop type if exists procrastinate_job_status, procrastinate_job_event_type cascade")
