"""Alerts for an area: subscriptions (a drawn polygon or an admin unit), the scan of each published run for new
events inside them, and webhook deliveries signed with HMAC-SHA256 (docs/portal.md#alerts-for-an-area).

A delivery is a JSON body stored once and sent as stored, with ``X-AmberWatch-Signature: sha256=<hex>`` =
HMAC-SHA256(subscription secret, raw body). Webhook URLs must be http(s), without credentials, and (unless
``webhook_allow_private``) resolve only to public addresses; the connection goes to the address that was checked
(no second DNS lookup), and redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import procrastinate

from amberwatch.errors import AmberWatchError, InputError, NotFoundError, PermissionDeniedError
from amberwatch.jobs.queue import ALERT_DELIVER_TASK, ALERT_SCAN_TASK, QUEUE
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.queries import subscriptions as sub_queries
from amberwatch.track.feed import atom_feed

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-AmberWatch-Signature"
AREA_KINDS = ("polygon", "oblast", "raion", "hromada")
STATUSES = ("new", "active", "abandoned", "recovering")
MAX_AREA_HA = 5_000_000.0  # 50,000 km², about two oblasts
MAX_POINTS = 10_000
MAX_ACTIVE_PER_CLIENT = 50
FEED_LIMIT = 100


class DeliveryFailed(AmberWatchError):
    """A webhook attempt failed in a way worth retrying (network error, 5xx, 429)."""


def sign(secret: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` + hex HMAC-SHA256 of the raw body with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute the signature of the raw body and compare in constant time."""
    return hmac.compare_digest(sign(secret, body), header.strip())


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- webhook URLs: no SSRF ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    url: str
    host: str
    port: int
    scheme: str
    addresses: tuple[str, ...]


def check_webhook_url(url: str, allow_private: bool) -> Target:
    """A webhook URL that may be called: http(s), a host, no user:password, and every address it resolves to
    public (global unicast) unless ``allow_private``. InputError otherwise."""
    if len(url) > 2000:
        raise InputError("webhook_url: longer than 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise InputError(f"webhook_url: not a URL ({err})") from None
    if parts.scheme not in ("http", "https"):
        raise InputError("webhook_url: only http and https URLs are called")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InputError("webhook_url: credentials in the URL are not allowed (the body is signed instead)")
    host = parts.hostname
    if not host:
        raise InputError("webhook_url: no host")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):  # no such name, an IDNA error, a NUL byte
        raise InputError(f"webhook_url: the host {host[:100]!r} does not resolve") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not allow_private and (not ip.is_global or ip.is_multicast):
            raise InputError(f"webhook_url: {host[:100]!r} resolves to a non-public address "
                             f"({'loopback' if ip.is_loopback else 'private or reserved'}): not called")
    return Target(url, host, port, parts.scheme, addresses)


def _post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> httpx.Response:
    """POST to the checked address itself (the Host header and TLS name stay those of the URL)."""
    address = target.addresses[0]
    parts = urlsplit(target.url)
    netloc = (f"[{address}]" if ":" in address else address) + f":{target.port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = target.host if parts.port is None else f"{target.host}:{parts.port}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        request = client.build_request("POST", pinned, content=body, headers={**headers, "Host": host_header},
                                       extensions=extensions)
        return client.send(request)


# -- subscriptions -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewSubscription:
    id: str
    secret: str
    unsubscribe_token: str
    area_kind: str
    area_name: str | None
    bbox: tuple[float, float, float, float] | None


def create_subscription(store: Store, settings: Settings, *, webhook_url: str, area: dict[str, Any] | None = None,
                        admin_kind: str | None = None, admin_name: str | None = None,
                        statuses: list[str] | None = None, created_by: str | None = None,
                        client: str | None = None) -> NewSubscription:
    """A subscription to ``area`` (GeoJSON Polygon/MultiPolygon in EPSG:4326) or the admin unit
    ``admin_kind``/``admin_name``; its secret and unsubscribe token are returned here only."""
    check_webhook_url(webhook_url, settings.webhook_allow_private)
    if statuses is not None:
        bad = [s for s in statuses if s not in STATUSES]
        if bad or not statuses:
            raise InputError(f"statuses: use one or more of {', '.join(STATUSES)}")
    if (area is None) == (admin_kind is None):
        raise InputError("give either area (a GeoJSON polygon) or admin (kind and name)")
    bbox = None
    with store.session() as session:
        if client is not None and sub_queries.count_active_for_client(session, client) >= MAX_ACTIVE_PER_CLIENT:
            raise PermissionDeniedError(f"at most {MAX_ACTIVE_PER_CLIENT} active subscriptions per client address")
        if area is not None:
            if not isinstance(area, dict) or area.get("type") not in ("Polygon", "MultiPolygon"):
                raise InputError("area: a GeoJSON Polygon or MultiPolygon (EPSG:4326 longitude/latitude)")
            try:
                with session.begin_nested():
                    info = sub_queries.polygon_check(session, json.dumps(area))
            except Exception:
                raise InputError("area: not a readable GeoJSON polygon") from None
            if not info["valid"]:
                raise InputError("area: the polygon is not valid (self-intersecting or unclosed rings)")
            if not (-180 <= info["x0"] <= info["x1"] <= 180 and -90 <= info["y0"] <= info["y1"] <= 90):
                raise InputError("area: coordinates must be longitude/latitude (EPSG:4326)")
            if info["points"] > MAX_POINTS:
                raise InputError(f"area: more than {MAX_POINTS} vertices")
            if not 0 < info["area_ha"] <= MAX_AREA_HA:
                raise InputError(f"area: must be larger than 0 and at most {MAX_AREA_HA:,.0f} ha")
            kind, name, wkt = "polygon", None, info["wkt"]
            bbox = (info["x0"], info["y0"], info["x1"], info["y1"])
        else:
            if admin_kind not in AREA_KINDS[1:]:
                raise InputError(f"admin.kind: use one of {', '.join(AREA_KINDS[1:])}")
            found = sub_queries.admin_unit_wkt(session, admin_kind, (admin_name or "").strip())
            if found is None:
                raise NotFoundError(f"no {admin_kind} named {(admin_name or '')[:100]!r} is loaded")
            kind, (name, wkt) = admin_kind, found
        sub_id, secret, token = "sub_" + secrets.token_urlsafe(12), "whsec_" + secrets.token_urlsafe(32), \
            "unsub_" + secrets.token_urlsafe(24)
        sub_queries.add(session, id=sub_id, area_wkt=wkt, area_kind=kind, area_name=name, webhook_url=webhook_url,
                        secret=secret, unsubscribe_hash=_token_hash(token), statuses=statuses,
                        created_by=created_by, client=client)
    return NewSubscription(sub_id, secret, token, kind, name, bbox)


def subscription_info(store: Store, subscription_id: str) -> dict[str, Any]:
    """What anyone holding the subscription's id may see: its area and state, never its secret or URL."""
    with store.session() as session:
        row = sub_queries.get(session, subscription_id)
        if row is None or not row.active:
            raise NotFoundError(f"no active subscription {subscription_id[:40]!r}")
        area = sub_queries.area_geojson(session, subscription_id)
        return {"id": row.id, "area_kind": row.area_kind, "area_name": row.area_name,
                "area": json.loads(area) if area else None, "statuses": row.statuses,
                "created_at": row.created_at.isoformat()}


def unsubscribe(store: Store, subscription_id: str, token: str | None, is_admin: bool = False) -> None:
    """End a subscription with its unsubscribe token (or an admin key); pending deliveries are not sent."""
    with store.session() as session:
        row = sub_queries.get(session, subscription_id)
        if row is None or not row.active:
            raise NotFoundError(f"no active subscription {subscription_id[:40]!r}")
        if not is_admin and not (token and hmac.compare_digest(_token_hash(token), row.unsubscribe_hash)):
            raise PermissionDeniedError("the unsubscribe token does not match this subscription")
        row.active = False


def subscription_atom(store: Store, subscription_id: str, base_url: str, self_url: str) -> bytes:
    """The newest events inside the subscription's area as an Atom feed (the same entries as /api/events.atom)."""
    with store.session() as session:
        row = sub_queries.get(session, subscription_id)
        if row is None or not row.active:
            raise NotFoundError(f"no active subscription {subscription_id[:40]!r}")
        rows = sub_queries.area_events(session, subscription_id, FEED_LIMIT)
    return atom_feed(rows, base_url, self_url)


# -- scan and deliver ----------------------------------------------------------------------------------
def _event(row: dict[str, Any], base_url: str) -> dict[str, Any]:
    return {"event_id": row["event_id"], "site_id": row["site_id"], "run_id": row["run_id"],
            "observed_at": row["observed_at"].isoformat(), "from_status": row["from_status"],
            "to_status": row["to_status"], "area_ha": round(float(row["area_ha"]), 4),
            "lon": round(float(row["lon"]), 7), "lat": round(float(row["lat"]), 7),
            "oblast": row["oblast"], "raion": row["raion"], "hromada": row["hromada"],
            "protected_areas": row["protected_areas"], "site_url": f"{base_url}/sites/{row['site_id']}"}


def scan(store: Store, settings: Settings) -> list[int]:
    """Match every newly published run against the active subscriptions, in one transaction: one pending
    delivery (body stored) per subscription with events of that run inside its area. Returns their ids."""
    base = settings.base_url
    created: list[int] = []
    with store.session() as session:
        for run in sub_queries.claim_unscanned_runs(session):
            for match in sub_queries.matches(session, run["id"]):
                events = match["events"]
                delivery = sub_queries.add_delivery(session, match["subscription_id"], run["id"],
                                                    [e["event_id"] for e in events])
                if delivery is None:
                    continue
                body = {"type": "amberwatch.area_events", "delivery_id": delivery.id,
                        "subscription_id": match["subscription_id"], "run_id": run["id"],
                        "published_at": run["published_at"].isoformat() if run["published_at"] else None,
                        "events": [_event(e, base) for e in events],
                        "unsubscribe": f"{base}/api/subscriptions/{match['subscription_id']}"}
                delivery.body = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
                created.append(delivery.id)
    if created:
        log.info("alerts: %d delivery(ies) queued", len(created))
    return created


def scan_needed(store: Store) -> bool:
    """Whether a published run has not been matched against the subscriptions yet (a cheap check)."""
    with store.session() as session:
        return sub_queries.has_unscanned_runs(session)


def deliver(store: Store, settings: Settings, delivery_id: int) -> str:
    """One attempt at a delivery; returns its state (delivered, refused, failed or pending). Raises
    DeliveryFailed when it is worth another attempt (the job queue retries with backoff)."""
    with store.session() as session:
        d = sub_queries.delivery_for_update(session, delivery_id)
        if d is None:
            return "gone"
        if d.state != "pending":
            return d.state
        sub = sub_queries.get(session, d.subscription_id)
        if sub is None or not sub.active or not sub.webhook_url:
            d.state, d.last_error = "refused", "unsubscribed"
            return d.state
        d.attempts += 1
        attempts, url, secret, body = d.attempts, sub.webhook_url, sub.secret, d.body.encode()
    error: str | None = None
    status: int | None = None
    retry = False
    try:
        target = check_webhook_url(url, settings.webhook_allow_private)
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "AmberWatch-Alerts",
                   SIGNATURE_HEADER: sign(secret, body), "X-AmberWatch-Delivery": str(delivery_id)}
        response = _post(target, body, headers, settings.webhook_timeout_s)
        status = response.status_code
        if 200 <= status < 300:
            pass
        else:
            error = f"HTTP {status}"
            retry = status >= 500 or status in (408, 429)
    except InputError as err:  # the URL is no longer allowed (e.g. it now resolves to a private address)
        error = str(err)
    except httpx.HTTPError as err:
        error, retry = f"{type(err).__name__}: {str(err)[:200]}", True
    final = not retry or attempts >= settings.webhook_max_attempts
    state = "delivered" if error is None else ("failed" if final else "pending")
    with store.session() as session:
        d = sub_queries.delivery_for_update(session, delivery_id)
        if d is not None:
            d.state, d.last_status, d.last_error = state, status, error
            if state == "delivered":
                d.delivered_at = sub_queries.now()
    if state == "pending":
        raise DeliveryFailed(f"delivery {delivery_id} attempt {attempts}: {error}")
    log.info("alerts: delivery %d %s after %d attempt(s)%s", delivery_id, state, attempts,
             f" ({error})" if error else "")
    return state


def deliveries(store: Store, subscription_id: str) -> list[dict[str, Any]]:
    with store.session() as session:
        return [{"id": d.id, "run_id": d.run_id, "event_ids": list(d.event_ids), "state": d.state,
                 "attempts": d.attempts, "last_status": d.last_status, "last_error": d.last_error}
                for d in sub_queries.deliveries(session, subscription_id)]


# -- the job queue ---------------------------------------------------------------------------------------
async def queue_scan(queue: procrastinate.App) -> int | None:
    """Queue one scan (at most one waiting: a second request while one waits is dropped)."""
    deferrer = queue.configure_task(ALERT_SCAN_TASK, queue=QUEUE, lock="alerts-scan", queueing_lock="alerts-scan")
    try:
        return await deferrer.defer_async()
    except procrastinate.exceptions.AlreadyEnqueued:
        return None


async def queue_delivery(queue: procrastinate.App, delivery_id: int) -> int:
    deferrer = queue.configure_task(ALERT_DELIVER_TASK, queue=QUEUE, lock=f"alert-delivery-{delivery_id}")
    return await deferrer.defer_async(delivery_id=delivery_id)


def request_scan(queue: procrastinate.App) -> None:
    """From synchronous code (a finished run's task): queue a scan; never fails the caller."""
    deferrer = queue.configure_task(ALERT_SCAN_TASK, queue=QUEUE, lock="alerts-scan", queueing_lock="alerts-scan")
    try:
        deferrer.defer()
    except procrastinate.exceptions.AlreadyEnqueued:
        pass
    except Exception:  # the periodic scan picks the run up within a minute
        log.exception("alerts: could not queue a scan")
