"""Prometheus metrics: HTTP requests by route template, job durations by task, and the store's counts read at
scrape time (queue depth, scenes, runs, live workers).

Counters and histograms live in this process, or — when ``PROMETHEUS_MULTIPROC_DIR`` is set before the process
starts — in files of that folder shared by every process of the host (``uvicorn --workers N``, ``amberwatch
worker`` beside ``serve``, containers sharing a volume); ``/metrics`` then adds them up. What the store knows is
read from the store at each scrape, so it is the same whichever process answers.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST


def _process_id() -> str:
    """Unique across the containers that share a multiprocess folder (each may have pid 1); no '_' (file names)."""
    return f"{socket.gethostname()}-{os.getpid()}".replace("_", "-")


if os.environ.get(MULTIPROC_ENV):
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)  # a missing folder would fail every observation
    values.ValueClass = values.MultiProcessValue(_process_id)

HTTP_REQUESTS = Counter("amberwatch_http_requests", "HTTP requests answered, by route template and status.",
                        ["method", "route", "status"])
HTTP_DURATION = Histogram("amberwatch_http_request_duration_seconds", "Time to answer an HTTP request.",
                          ["method", "route"],
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
JOB_DURATION = Histogram("amberwatch_job_duration_seconds", "Time a worker spent on a job, by task and outcome.",
                         ["task", "outcome"],
                         buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200))
UNMATCHED = "<unmatched>"


# -- HTTP ---------------------------------------------------------------------------------------------------------

def route_template(scope: Scope) -> str:
    """The path template of the route that served ``scope`` (``/api/sites/{site_id}``, or
    ``/ogcapi/collections/{collection_id}/items`` inside a mounted app), read after routing, or ``<unmatched>``:
    never the raw path, whose values would make a series per URL."""
    route = scope.get("route")
    regex, template = getattr(route, "path_regex", None), getattr(route, "path_format", None)
    if regex is None or template is None:
        return UNMATCHED
    root = scope.get("root_path", "")
    inner = scope["path"][len(root):] if scope["path"].startswith(root) else scope["path"]
    # the route may sit in a router included with a prefix: that prefix is the part of the path before the match
    for i, char in enumerate(inner):
        if char == "/" and regex.match(inner[i:]):
            return f"{root}{inner[:i]}{template}"
    return f"{root}{template}"


class HttpMetrics:
    """ASGI middleware counting and timing every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def observed_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = route_template(scope)  # routing has put the matched route into the scope
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_DURATION.labels(scope["method"], route).observe(time.perf_counter() - started)


# -- jobs ---------------------------------------------------------------------------------------------------------

async def observe_job(call_next: Callable[[], Any], context: Any, worker: Any) -> Any:
    """procrastinate worker middleware: the duration of every job, labelled by task and outcome."""
    task = getattr(context, "task", None)
    name = getattr(task, "name", None) or getattr(getattr(context, "job", None), "task_name", "unknown")
    started = time.perf_counter()
    outcome = "failed"
    try:
        result = await call_next()
        outcome = "succeeded"
        return result
    finally:
        JOB_DURATION.labels(name, outcome).observe(time.perf_counter() - started)


# -- what the store knows -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StoreSnapshot:
    """Counts read from the store at scrape time."""

    queue_jobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (queue, status) -> jobs
    runs: dict[str, int] = field(default_factory=dict)  # state -> runs
    scenes_ingested: int = 0
    scenes_processed: int = 0  # scenes with a published run
    live_workers: int = 0


class StoreCollector(Collector):
    """Yields the store's counts; ``read`` is called at every scrape (an unreachable store yields
    ``amberwatch_store_up 0`` and nothing else)."""

    def __init__(self, read: Callable[[], StoreSnapshot]):
        self.read = read

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("amberwatch_store_up", "1 when the store answered this scrape.")
        try:
            snap = self.read()
        except Exception:  # the scrape still answers; /readyz says why
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        queue = GaugeMetricFamily("amberwatch_queue_jobs", "Jobs in the queue by queue and status.",
                                  labels=["queue", "status"])
        for (name, status), n in sorted(snap.queue_jobs.items()):
            queue.add_metric([name, status], n)
        yield queue
        runs = GaugeMetricFamily("amberwatch_runs", "Detection runs by state.", labels=["state"])
        for state, n in sorted(snap.runs.items()):
            runs.add_metric([state], n)
        yield runs
        yield CounterMetricFamily("amberwatch_scenes_ingested", "Scenes ingested (stored).",
                                  value=snap.scenes_ingested)
        yield CounterMetricFamily("amberwatch_scenes_processed", "Scenes with a published detection run.",
                                  value=snap.scenes_processed)
        yield GaugeMetricFamily("amberwatch_workers_live", "Job workers with a recent heartbeat.",
                                value=snap.live_workers)


def exposition(store_registry: CollectorRegistry) -> bytes:
    """The text exposition: this process's (or, in multiprocess mode, every process's) counters and histograms,
    then the store's counts."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        own = CollectorRegistry()
        MultiProcessCollector(own, path=directory)
    else:
        own = REGISTRY
    return generate_latest(own) + generate_latest(store_registry)
