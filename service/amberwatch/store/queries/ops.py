"""SQL of operations: what /metrics and /readyz read (queue depth, runs, scenes, live workers, schema revision),
and the data-directory paths a restore moves to its new folder.

Functions take an open ``Connection`` (the caller owns the transaction) and return plain values.
"""

from __future__ import annotations

from sqlalchemy import Connection, text


def queue_depth(conn: Connection) -> dict[tuple[str, str], int]:
    """(queue name, status) -> jobs of the procrastinate queue."""
    rows = conn.execute(text(
        "select queue_name, status::text, count(*) from procrastinate_jobs group by queue_name, status"))
    return {(q, s): int(n) for q, s, n in rows}


def runs_by_state(conn: Connection) -> dict[str, int]:
    return {s: int(n) for s, n in conn.execute(text("select state, count(*) from runs group by state"))}


def scene_counts(conn: Connection) -> tuple[int, int]:
    """(scenes stored, scenes with a published run)."""
    row = conn.execute(text(
        "select (select count(*) from scenes), "
        "(select count(distinct rs.scene_id) from run_scenes rs join runs r on r.id = rs.run_id "
        "where r.state = 'published')")).one()
    return int(row[0]), int(row[1])


def live_workers(conn: Connection, heartbeat_within_s: float) -> int:
    """Workers whose last heartbeat is at most ``heartbeat_within_s`` seconds old."""
    return int(conn.execute(text(
        "select count(*) from procrastinate_workers where last_heartbeat > now() - make_interval(secs => :s)"),
        {"s": float(heartbeat_within_s)}).scalar_one())


def postgis_extension(conn: Connection) -> str | None:
    """The version of the installed PostGIS extension, None when the database has none."""
    value = conn.execute(text("select extversion from pg_extension where extname = 'postgis'")).scalar()
    return None if value is None else str(value)


def schema_revisions(conn: Connection) -> list[str]:
    """The Alembic revision(s) the database is at (empty before the first migration)."""
    exists = conn.execute(text("select to_regclass('public.alembic_version') is not null")).scalar_one()
    if not exists:
        return []
    return [r for (r,) in conn.execute(text("select version_num from alembic_version"))]


def is_empty(conn: Connection) -> bool:
    """True when the public schema holds no table of ours (only PostGIS's ``spatial_ref_sys``)."""
    n = conn.execute(text(
        "select count(*) from pg_tables where schemaname = 'public' and tablename <> 'spatial_ref_sys'")).scalar_one()
    return int(n) == 0


def move_data_paths(conn: Connection, old_root: str, new_root: str) -> int:
    """Rewrite stored file paths (and STAC hrefs) under ``old_root`` to ``new_root``; returns rows changed."""
    old, new = old_root.rstrip("/") + "/", new_root.rstrip("/") + "/"
    params = {"old": old, "new": new, "n": len(old), "like": old.replace("\\", "\\\\").replace("%", r"\%")
              .replace("_", r"\_") + "%"}
    changed = 0
    for table, column in (("scenes", "reflectance_path"), ("scenes", "cloud_mask_path"),
                          ("runs", "probability_path")):
        changed += conn.execute(text(
            f"update {table} set {column} = :new || substr({column}, :n + 1) where {column} like :like"),
            params).rowcount
    conn.execute(text("update scenes set stac_item = replace(stac_item::text, :old, :new)::jsonb "
                      "where strpos(stac_item::text, :old) > 0"), params)
    return changed
