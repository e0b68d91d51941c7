"""accuracy-assessment samples and reports (issue 10)

Revision ID: 0010_accuracy
Revises: 0009_validation

Tables: ``accuracy_designs`` (a stratified random sample for one model version: seed, sizes, parameters),
``accuracy_strata`` (mining / not mining inside one oblast: geometry, area, planned size), ``accuracy_points``
(the sample: one point each, linked to its item in the validation queue) and ``accuracy_reports`` (the estimates,
numbered per model version).
"""

from __future__ import annotations

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010_accuracy"
down_revision = "0009_validation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accuracy_designs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_version", sa.String(150), nullable=False, index=True),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("n_total", sa.Integer, nullable=False),
        sa.Column("parameters", JSONB, nullable=False, server_default="{}"),
        sa.Column("total_area_ha", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "accuracy_strata",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("design_id", sa.Integer, sa.ForeignKey("accuracy_designs.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("oblast", sa.Text, nullable=False),
        sa.Column("map_class", sa.String(12), nullable=False),
        sa.Column("area_ha", sa.Float, nullable=False),
        sa.Column("n_planned", sa.Integer, nullable=False),
        sa.Column("geom", geoalchemy2.Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=True),
        sa.UniqueConstraint("design_id", "name", name="accuracy_strata_name"),
        sa.CheckConstraint("map_class in ('mining','not_mining')", name="accuracy_strata_class"),
    )
    op.create_table(
        "accuracy_points",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("design_id", sa.Integer, sa.ForeignKey("accuracy_designs.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("stratum_id", sa.Integer, sa.ForeignKey("accuracy_strata.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("validation_item_id", sa.BigInteger,
                  sa.ForeignKey("validation_items.id", ondelete="SET NULL"), nullable=True, index=True),
        sa.Column("geom", geoalchemy2.Geometry("POINT", srid=4326, spatial_index=True), nullable=False),
    )
    op.create_table(
        "accuracy_reports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("design_id", sa.Integer, sa.ForeignKey("accuracy_designs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model_version", sa.String(150), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("report", JSONB, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("model_version", "version", name="accuracy_reports_version"),
    )


def downgrade() -> None:
    for table in ("accuracy_reports", "accuracy_points", "accuracy_strata", "accuracy_designs"):
        op.drop_table(table)
