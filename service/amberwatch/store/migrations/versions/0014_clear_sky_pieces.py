"""run_clear_sky_pieces: each run's clear sky stored once as small indexed pieces (issue 13, pipeline speed)

Revision ID: 0014_clear_sky_pieces
Revises: 0013_serving_plans

Site tracking asks, for every run that covers a site, how much of the site that run saw clear. It used to cut the
run's ``clear_sky`` footprint (one polygon of ~94,000 vertices with its cloud holes for a 2,000 km² scene) with
ST_Subdivide on every publish, for every covering run again: 1.7 s per run and scene at 4608 px, tens of seconds
on a whole tile. The pieces are now cut once, when the run is stored (``track.geo.cut_into_pieces``), and read by
their index. Existing runs are cut here with ST_Subdivide.
"""

from __future__ import annotations

from alembic import op

revision = "0014_clear_sky_pieces"
down_revision = "0013_serving_plans"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        create table run_clear_sky_pieces (
            id bigserial primary key,
            run_id integer not null references runs(id) on delete cascade,
            geom geometry(Polygon, 4326) not null
        )""")
    op.execute("create index ix_run_clear_sky_pieces_run_id on run_clear_sky_pieces (run_id)")
    op.execute("create index ix_run_clear_sky_pieces_geom on run_clear_sky_pieces using gist (geom)")
    op.execute("""
        insert into run_clear_sky_pieces (run_id, geom)
        select r.id, d.geom
        from runs r,
             lateral ST_Subdivide(ST_CollectionExtract(ST_MakeValid(r.clear_sky), 3), 256) s(g),
             lateral ST_Dump(ST_CollectionExtract(ST_MakeValid(s.g), 3)) d
        where r.clear_sky is not null and not ST_IsEmpty(r.clear_sky)""")


def downgrade() -> None:
    op.execute("drop table run_clear_sky_pieces")
