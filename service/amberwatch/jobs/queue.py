"""The queue: one procrastinate App on the store's database, and the names of our tasks.

Deferring needs only the task names (web and CLI never import the task bodies); the worker registers them.
"""

from __future__ import annotations

import procrastinate
from sqlalchemy.engine import make_url

QUEUE = "amberwatch"
RUN_TASK = "amberwatch:run_detection"
TRACK_TASK = "amberwatch:track_series"
ALERT_SCAN_TASK = "amberwatch:scan_alerts"
ALERT_DELIVER_TASK = "amberwatch:deliver_alert"
MONITOR_SEARCH_TASK = "amberwatch:search_monitor"  # STAC monitors (usecases/stac_monitors.py)
MONITOR_ITEM_TASK = "amberwatch:process_monitor_item"


def conninfo(sqlalchemy_url: str) -> str:
    """A libpq connection string for a SQLAlchemy URL (psycopg 3 does not read the ``+driver`` part)."""
    url = make_url(sqlalchemy_url)
    parts = {"host": url.host, "port": url.port, "dbname": url.database, "user": url.username,
             "password": url.password, **{k: v for k, v in url.query.items() if isinstance(v, str)}}
    return " ".join(f"{k}={v}" for k, v in parts.items() if v not in (None, ""))


def make_queue(sqlalchemy_url: str) -> procrastinate.App:
    """A procrastinate App on the store's database (its schema comes with migration 0005)."""
    connector = procrastinate.PsycopgConnector(conninfo=conninfo(sqlalchemy_url), min_size=1, max_size=4)
    return procrastinate.App(connector=connector)


async def defer(queue: procrastinate.App, task: str, lock: str, *, queue_name: str = QUEUE, **kwargs: int) -> int:
    """Queue ``task`` once (on ``queue_name``): the lock keeps two jobs of one object from running together."""
    deferrer = queue.configure_task(task, queue=queue_name, lock=lock)
    return await deferrer.defer_async(**kwargs)
