"""volunteer validation votes, gold items, expert decisions and field checks (issue 10)

Revision ID: 0009_validation
Revises: 0008_crowd_reports

Tables: ``validation_items`` (a detection, a site or a bare location to look at, with its source and, once known,
its final answer), ``validation_votes`` (one per item and volunteer), ``validation_decisions`` (an analyst's
final word), ``field_checks`` (a visit on the ground, keyed by the client's UUID) and ``field_assignments``.
The role ``field`` is added to the API keys. ``mining_sites`` and ``published_detections`` get the columns
``validation_status`` and ``field_checked`` (appended: ``create or replace view`` keeps their dependants).
"""

from __future__ import annotations

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0009_validation"
down_revision = "0008_crowd_reports"
branch_labels = None
depends_on = None

ROLES_OLD = "role in ('admin','analyst','moderator','validator')"
ROLES_NEW = "role in ('admin','analyst','moderator','validator','field')"

# The best-settled item of a site / detection: decided first, then disputed, then pending.
_RANK = ("case vi.status when 'confirmed' then 0 when 'rejected' then 0 when 'disputed' then 1 "
         "when 'pending' then 2 else 3 end, vi.id desc")
SITE_STATUS = f"""coalesce((select vi.status from validation_items vi where vi.site_id = {{site}}
                   order by {_RANK} limit 1), 'unvalidated')"""
FIELD_CHECKED = "exists (select 1 from field_checks fc where fc.site_id = {site})"

MINING_SITES_V2 = """
    select id as site_id, status, status_since, first_seen, last_seen, last_observed, area_ha, max_area_ha,
           pit_area_ha, pond_area_ha, growth_rate_ha_yr, disturbance, disturbance_score, confidence,
           n_observations, first_run_id, last_run_id, oblast, raion, hromada, protected_areas, in_protected_area,
           protected_distance_m, updated_at, geom
    from sites
    where merged_into_id is null
"""
MINING_SITES_V3 = f"""
    select id as site_id, status, status_since, first_seen, last_seen, last_observed, area_ha, max_area_ha,
           pit_area_ha, pond_area_ha, growth_rate_ha_yr, disturbance, disturbance_score, confidence,
           n_observations, first_run_id, last_run_id, oblast, raion, hromada, protected_areas, in_protected_area,
           protected_distance_m, updated_at, geom,
           {SITE_STATUS.format(site="sites.id")}::varchar(12) as validation_status,
           {FIELD_CHECKED.format(site="sites.id")} as field_checked
    from sites
    where merged_into_id is null
"""
DETECTIONS_V2 = """
select d.id, d.run_id, m.name || '@' || m.version as model_version, d.class, d.confidence, d.area_ha,
       d.observed_at, d.site_id, s.scene_key, d.change_class, d.change_fraction, d.geom
from detections d
join runs r on r.id = d.run_id and r.state = 'published'
left join model_versions m on m.id = r.model_version_id
join scenes s on s.id = d.scene_id
"""
# a detection's own item first, else its site's
DETECTIONS_V3 = f"""
select d.id, d.run_id, m.name || '@' || m.version as model_version, d.class, d.confidence, d.area_ha,
       d.observed_at, d.site_id, s.scene_key, d.change_class, d.change_fraction, d.geom,
       coalesce((select vi.status from validation_items vi where vi.detection_id = d.id and vi.status <> 'unvalidated'
                 order by {_RANK} limit 1),
                {SITE_STATUS.format(site="d.site_id")})::varchar(12) as validation_status,
       {FIELD_CHECKED.format(site="d.site_id")} as field_checked
from detections d
join runs r on r.id = d.run_id and r.state = 'published'
left join model_versions m on m.id = r.model_version_id
join scenes s on s.id = d.scene_id
"""


def upgrade() -> None:
    op.drop_constraint("api_keys_role_check", "api_keys", type_="check")
    op.create_check_constraint("api_keys_role_check", "api_keys", ROLES_NEW)
    op.create_table(
        "validation_items",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("detection_id", sa.BigInteger, sa.ForeignKey("detections.id", ondelete="CASCADE"), nullable=True,
                  index=True),
        sa.Column("site_id", sa.Integer, sa.ForeignKey("sites.id", ondelete="CASCADE"), nullable=True, index=True),
        sa.Column("geom", geoalchemy2.Geometry("GEOMETRY", srid=4326, spatial_index=True), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("priority", sa.SmallInteger, nullable=False),
        sa.Column("rank", sa.Float, nullable=False, server_default="0"),
        sa.Column("expected_answer", sa.String(12), nullable=True),
        sa.Column("votes_needed", sa.SmallInteger, nullable=False),
        sa.Column("status", sa.String(12), nullable=False, server_default="unvalidated", index=True),
        sa.Column("final_answer", sa.String(12), nullable=True),
        sa.Column("final_reason", sa.String(20), nullable=True),
        sa.Column("decided_via", sa.String(12), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sample", sa.String(100), nullable=True, index=True),
        sa.Column("details", JSONB, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("kind in ('detection','site','location')", name="validation_items_kind"),
        sa.CheckConstraint("(kind = 'detection') = (detection_id is not null) and "
                           "(kind <> 'site' or site_id is not null)", name="validation_items_target"),
        sa.CheckConstraint("source in ('new_site','uncertain','accuracy_sample','gold')",
                           name="validation_items_source"),
        sa.CheckConstraint("status in ('unvalidated','pending','confirmed','rejected','disputed')",
                           name="validation_items_status"),
        sa.CheckConstraint("expected_answer in ('mining','not_mining')", name="validation_items_expected"),
        sa.CheckConstraint("final_answer in ('mining','not_mining')", name="validation_items_final"),
        sa.CheckConstraint("decided_via in ('votes','expert','field_check','gold')", name="validation_items_via"),
        sa.CheckConstraint("source <> 'gold' or expected_answer is not null", name="validation_items_gold"),
    )
    op.create_index("validation_items_detection_source", "validation_items", ["detection_id", "source"],
                    unique=True, postgresql_where=sa.text("kind = 'detection'"))
    op.create_index("validation_items_site_source", "validation_items", ["site_id", "source"],
                    unique=True, postgresql_where=sa.text("kind = 'site'"))
    op.create_index("validation_items_queue", "validation_items", ["priority", "rank", "id"])
    op.create_table(
        "validation_votes",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("item_id", sa.BigInteger, sa.ForeignKey("validation_items.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("voter", sa.String(100), nullable=False, index=True),
        sa.Column("answer", sa.String(12), nullable=False),
        sa.Column("reason", sa.String(20), nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("item_id", "voter", name="validation_votes_once"),
        sa.CheckConstraint("answer in ('mining','not_mining','unsure')", name="validation_votes_answer"),
        sa.CheckConstraint("(answer = 'not_mining') = (reason is not null)", name="validation_votes_reason"),
    )
    op.create_table(
        "validation_decisions",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("item_id", sa.BigInteger, sa.ForeignKey("validation_items.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("analyst", sa.String(100), nullable=False),
        sa.Column("answer", sa.String(12), nullable=False),
        sa.Column("reason", sa.String(20), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("answer in ('mining','not_mining')", name="validation_decisions_answer"),
        sa.CheckConstraint("(answer = 'not_mining') = (reason is not null)", name="validation_decisions_reason"),
    )
    op.create_table(
        "field_checks",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("site_id", sa.Integer, sa.ForeignKey("sites.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("checked_on", sa.Date, nullable=False),
        sa.Column("observer", sa.String(200), nullable=False),
        sa.Column("state", sa.String(14), nullable=False),
        sa.Column("disturbance", sa.SmallInteger, nullable=False),
        sa.Column("position", geoalchemy2.Geometry("POINT", srid=4326, spatial_index=False), nullable=True),
        sa.Column("position_accuracy_m", sa.Float, nullable=True),
        sa.Column("notes", sa.Text, nullable=True),
        sa.Column("photos", JSONB, nullable=False, server_default="[]"),
        sa.Column("submitted_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("state in ('active','abandoned','recultivated','not_mining')", name="field_checks_state"),
        sa.CheckConstraint("disturbance between 1 and 5", name="field_checks_disturbance"),
    )
    op.create_table(
        "field_assignments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("site_id", sa.Integer, sa.ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
        sa.Column("assignee", sa.String(100), nullable=True),  # a key name; NULL = every field team
        sa.Column("created_by", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("site_id", "assignee", name="field_assignments_once", postgresql_nulls_not_distinct=True),
    )
    op.execute(f"create or replace view mining_sites as {MINING_SITES_V3}")
    op.execute(f"create or replace view published_detections as {DETECTIONS_V3}")


def downgrade() -> None:
    # run_<id> views select * from published_detections: drop them, the next publish.refresh re-creates them
    op.execute("drop view if exists published_detections cascade")
    op.execute(f"create view published_detections as {DETECTIONS_V2}")
    op.execute("drop view if exists mining_sites cascade")
    op.execute(f"create view mining_sites as {MINING_SITES_V2}")
    for table in ("field_assignments", "field_checks", "validation_decisions", "validation_votes",
                  "validation_items"):
        op.drop_table(table)
    op.execute("delete from api_keys where role = 'field'")
    op.drop_constraint("api_keys_role_check", "api_keys", type_="check")
    op.create_check_constraint("api_keys_role_check", "api_keys", ROLES_OLD)
