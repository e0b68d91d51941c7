"""The job queue (procrastinate on our PostgreSQL): what to defer and where; the worker that runs jobs is
``amberwatch.worker``."""
