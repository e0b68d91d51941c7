"""monitoring through time: site observations, events, admin units, protected areas

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:00:00
"""

from __future__ import annotations

import geoalchemy2  # noqa: F401
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

MINING_SITES_V1 = """
    create view mining_sites as
    select id as site_id, status, first_seen, last_seen, last_observed, area_ha, max_area_ha, pit_area_ha,
           pond_area_ha, confidence, n_observations, first_run_id, last_run_id, oblast, raion, hromada,
           protected_areas, updated_at, geom
    from sites
"""

# Merged sites (merged_into_id set) are history only: the layers show the site they were merged into.
MINING_SITES_V2 = """
    create view mining_sites as
    select id as site_id, status, status_since, first_seen, last_seen, last_observed, area_ha, max_area_ha,
           pit_area_ha, pond_area_ha, growth_rate_ha_yr, disturbance, disturbance_score, confidence,
           n_observations, first_run_id, last_run_id, oblast, raion, hromada, protected_areas, in_protected_area,
           protected_distance_m, updated_at, geom
    from sites
    where merged_into_id is null
"""

SITE_EVENTS = """
    create view site_events as
    select e.id as event_id, e.site_id, e.observed_at, e.from_status, e.to_status, e.area_ha, e.run_id,
           e.created_at, s.oblast, s.raion, s.hromada, s.protected_areas, e.geom
    from events e
    join sites s on s.id = e.site_id
    where s.merged_into_id is null
"""

SITE_HISTORY = """
    create view site_history as
    select o.id as observation_id, o.site_id, o.run_id, o.observed_at, o.detected, o.status, o.area_ha,
           o.pit_area_ha, o.pond_area_ha, o.cumulative_area_ha, o.geom
    from site_observations o
    join sites s on s.id = o.site_id
    where s.merged_into_id is null
"""


def _geom(kind: str, index: bool = True) -> geoalchemy2.types.Geometry:
    return geoalchemy2.types.Geometry(geometry_type=kind, srid=4326, dimension=2, spatial_index=index,
                                      from_text='ST_GeomFromEWKT', name='geometry')


def upgrade() -> None:
    op.execute('drop view if exists mining_sites')
    op.add_column('sites', sa.Column('growth_rate_ha_yr', sa.Float(), nullable=True))
    op.add_column('sites', sa.Column('disturbance', sa.String(length=10), nullable=True))
    op.add_column('sites', sa.Column('disturbance_score', sa.Float(), nullable=True))
    op.add_column('sites', sa.Column('protected_distance_m', sa.Float(), nullable=True))
    op.add_column('sites', sa.Column('in_protected_area', sa.Boolean(), server_default='false', nullable=False))
    op.add_column('sites', sa.Column('status_since', sa.DateTime(timezone=True), nullable=True))
    op.add_column('sites', sa.Column('merged_into_id', sa.Integer(), nullable=True))
    op.create_foreign_key('sites_merged_into_id_fkey', 'sites', 'sites', ['merged_into_id'], ['id'],
                          ondelete='SET NULL')

    op.create_table('site_observations',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('observed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detected', sa.Boolean(), nullable=False),
    sa.Column('area_ha', sa.Float(), nullable=False),
    sa.Column('pit_area_ha', sa.Float(), nullable=False),
    sa.Column('pond_area_ha', sa.Float(), nullable=False),
    sa.Column('cumulative_area_ha', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('geom', _geom('MULTIPOLYGON', index=False), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('site_id', 'observed_at'),
    )
    op.create_index(op.f('ix_site_observations_site_id'), 'site_observations', ['site_id'])
    op.create_index(op.f('ix_site_observations_run_id'), 'site_observations', ['run_id'])
    op.create_index(op.f('ix_site_observations_observed_at'), 'site_observations', ['observed_at'])

    op.create_table('events',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('observed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('from_status', sa.String(length=12), nullable=True),
    sa.Column('to_status', sa.String(length=12), nullable=False),
    sa.Column('area_ha', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('geom', _geom('POINT'), nullable=True),
    sa.Column('extent', _geom('MULTIPOLYGON', index=False), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('site_id', 'observed_at', 'to_status', name='events_site_date_status_key'),
    )
    op.create_index(op.f('ix_events_site_id'), 'events', ['site_id'])
    op.create_index(op.f('ix_events_run_id'), 'events', ['run_id'])
    op.create_index(op.f('ix_events_observed_at'), 'events', ['observed_at'])
    op.create_index(op.f('ix_events_to_status'), 'events', ['to_status'])
    op.create_index(op.f('ix_events_created_at'), 'events', ['created_at'])

    op.create_table('admin_units',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('code', sa.Text(), nullable=True),
    sa.Column('parent', sa.Text(), nullable=True),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('geom', _geom('MULTIPOLYGON'), nullable=True),
    sa.CheckConstraint("kind in ('oblast','raion','hromada')", name='admin_units_kind_check'),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_admin_units_kind'), 'admin_units', ['kind'])

    op.create_table('protected_areas',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('category', sa.Text(), nullable=True),
    sa.Column('code', sa.Text(), nullable=True),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('geom', _geom('MULTIPOLYGON'), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_protected_areas_source'), 'protected_areas', ['source'])

    op.execute(MINING_SITES_V2)
    op.execute(SITE_EVENTS)
    op.execute(SITE_HISTORY)


def downgrade() -> None:
    op.execute('drop view if exists site_history')
    op.execute('drop view if exists site_events')
    op.execute('drop view if exists mining_sites')
    op.drop_table('protected_areas')
    op.drop_table('admin_units')
    op.drop_table('events')
    op.drop_table('site_observations')
    op.drop_constraint('sites_merged_into_id_fkey', 'sites', type_='foreignkey')
    for col in ('merged_into_id', 'status_since', 'in_protected_area', 'protected_distance_m', 'disturbance_score',
                'disturbance', 'growth_rate_ha_yr'):
        op.drop_column('sites', col)
    op.execute(MINING_SITES_V1)
