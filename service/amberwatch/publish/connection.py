"""Database connection parameters for MapServer and pygeoapi, derived from the store's URL."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

from amberwatch.store.db import Store
from amberwatch.store.embedded import DB_NAME, DB_USER

# libpq keywords passed through from a configured URL's query string (e.g. ?sslmode=require).
_LIBPQ_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name")

# Session settings of the serving connections (MapServer, pygeoapi). Times are compared in UTC. No parallel query:
# a WFS/OGC API page is a LIMIT over a bbox, where starting parallel workers cost more than they save (a 1000-feature
# WFS page on 1M detections: 52 -> 13 ms of SQL), and on a small server concurrent requests already use every core.
# No JIT: PostGIS functions' high declared costs make the planner JIT-compile plain bbox scans (WFS numberMatched of
# a 0.5° box on 1M detections: 205 ms, of which ~170 ms compiling; 45 ms without).
SERVING_SETTINGS = {"TimeZone": "UTC", "max_parallel_workers_per_gather": "0", "jit": "off"}


def serving_options() -> str:
    """The libpq ``options`` value that applies :data:`SERVING_SETTINGS`."""
    return " ".join(f"-c {k}={v}" for k, v in SERVING_SETTINGS.items())


@dataclass(frozen=True)
class DbParams:
    host: str
    port: int
    dbname: str
    user: str
    password: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_store(cls, store: Store) -> DbParams:
        """The embedded cluster (127.0.0.1, its port, user/db ``amberwatch``) or the parsed configured URL."""
        if store.embedded is not None:
            return cls(host="127.0.0.1", port=store.embedded.port, dbname=DB_NAME, user=DB_USER)
        url = make_url(store.url)
        options = {k: str(v) for k, v in url.query.items() if k in _LIBPQ_OPTIONS and isinstance(v, str)}
        return cls(
            host=url.host or "localhost",
            port=url.port or 5432,
            dbname=url.database or "",
            user=url.username or "",
            password=url.password,
            options=options,
        )

    def libpq(self) -> str:
        """A libpq connection string (MapServer ``CONNECTION``) with the serving settings."""

        def q(value: object) -> str:
            text = str(value).replace("\\", "\\\\").replace("'", "\\'")
            return f"'{text}'"

        parts = [f"host={q(self.host)}", f"port={self.port}", f"dbname={q(self.dbname)}", f"user={q(self.user)}"]
        if self.password:
            parts.append(f"password={q(self.password)}")
        parts += [f"{k}={q(v)}" for k, v in self.options.items()]
        parts.append(f"options={q(serving_options())}")
        return " ".join(parts)
