"""Accuracy assessment of a model version's published map (docs/accuracy.md): ``design`` draws a stratified
random sample (mining / not mining in each oblast, allocation of amberwatch.accuracy.allocation) and puts every
point in the validation queue (source ``accuracy_sample``); ``report`` reads the points' final reference answers
(field check > expert decision > agreed votes), estimates the error matrix, accuracies and the area-adjusted
mining area with its 95% confidence interval (amberwatch.accuracy.estimate) and stores it as the next version of
the model version's report."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping
from typing import Any

from amberwatch.accuracy.allocation import allocate
from amberwatch.accuracy.estimate import Stratum, estimate
from amberwatch.errors import InputError, NotFoundError
from amberwatch.store.db import Store
from amberwatch.store.queries import accuracy as q
from amberwatch.store.queries import validation as validation_queries
from amberwatch.validation.items import NewItem

CLASSES = ("mining", "not_mining")
SOURCE = "accuracy_sample"
MAX_SAMPLE = 20_000
MAX_SEED = 2**31 - 1 - 1000  # ST_GeneratePoints takes a positive int; each stratum uses seed + its index
MAX_MODEL_VERSION = 150


def check_model_version(model_version: str) -> str:
    if not model_version or len(model_version) > MAX_MODEL_VERSION or not model_version.isprintable():
        raise InputError("model version: give name@version as listed by `amberwatch models list`")
    return model_version


def sample_name(design_id: int) -> str:
    """The ``sample`` label of the design's items in the validation queue."""
    return f"accuracy:{design_id}"


def design(store: Store, model_version: str, n_total: int = 500, minimum: int = 50, seed: int | None = None,
           sizes: Mapping[str, int] | None = None, created_by: str | None = None, votes_needed: int = 3) -> dict:
    """Stratify, allocate, draw the sample and queue it for validation; returns the design with its strata."""
    check_model_version(model_version)
    if not 2 <= n_total <= MAX_SAMPLE:
        raise InputError(f"--n-total must be between 2 and {MAX_SAMPLE} (got {n_total})")
    if seed is None:
        seed = 1 + secrets.randbelow(MAX_SEED)
    if not 1 <= seed <= MAX_SEED:
        raise InputError(f"--seed must be between 1 and {MAX_SEED} (got {seed})")
    with store.session() as session:
        if q.published_detection_count(session, model_version) == 0:
            known = ", ".join(q.published_model_versions(session)) or "none yet"
            raise NotFoundError(f"model version {model_version!r} has no published detections (published: {known})")
        if q.oblast_count(session) == 0:
            raise InputError("no oblasts loaded: the strata are mining / not mining by oblast; load them with "
                             "`amberwatch layers load oblast FILE`")
        parameters = {"minimum": minimum, "requested_sizes": dict(sizes or {}), "allocation": "olofsson2014"}
        design_id = q.create_design(session, model_version, seed, n_total, parameters, created_by)
        strata = q.create_strata(session, design_id, model_version)
        planned = _sizes(strata, n_total, minimum, sizes)
        for i, (s, n) in enumerate(zip(strata, planned, strict=True)):
            s["n_planned"] = n
            s["n_points"] = q.sample_stratum(session, s["id"], n, seed + i) if s["area_ha"] > 0 else 0
        points = q.design_points(session, design_id)
        items = [NewItem(kind="location", source=SOURCE, geom_wkt=p["wkt"], site_id=p["site_id"],
                         sample=sample_name(design_id), rank=float(i),
                         details={"accuracy_point": p["id"], "stratum": p["stratum"], "map_class": p["map_class"]})
                 for i, p in enumerate(points)]
        for p, item_id in zip(points, validation_queries.add_items(session, items, votes_needed), strict=True):
            q.link_item(session, p["id"], item_id)
        for site_id in sorted({p["site_id"] for p in points if p["site_id"] is not None}):
            validation_queries.assign(session, site_id, None, created_by or "accuracy design")  # every field team
        total = sum(s["area_ha"] for s in strata)
    return {"design_id": design_id, "model_version": model_version, "seed": seed, "n_total": sum(planned),
            "total_area_ha": total, "sample": sample_name(design_id),
            "strata": [{k: s[k] for k in ("name", "oblast", "map_class", "area_ha", "n_planned", "n_points")}
                       for s in strata]}


def _sizes(strata: list[dict], n_total: int, minimum: int, sizes: Mapping[str, int] | None) -> list[int]:
    if not sizes:
        return allocate([s["area_ha"] for s in strata], n_total, minimum)
    names = {s["name"] for s in strata if s["area_ha"] > 0}
    unknown = sorted(set(sizes) - {s["name"] for s in strata})
    if unknown:
        raise InputError(f"no stratum named {', '.join(map(repr, unknown))}; "
                         f"the strata are: {', '.join(sorted(names))}")
    missing = sorted(names - set(sizes))
    if missing:
        raise InputError(f"--size must give every stratum: missing {', '.join(missing)}")
    bad = sorted(k for k in names if not 2 <= sizes[k] <= MAX_SAMPLE)
    if bad:
        raise InputError(f"each stratum needs between 2 and {MAX_SAMPLE} points: {', '.join(bad)}")
    return [int(sizes.get(s["name"], 0)) if s["area_ha"] > 0 else 0 for s in strata]


def report(store: Store, model_version: str, created_by: str | None = None) -> dict:
    """Estimate from the latest design's reference answers and store it as the model version's next report."""
    check_model_version(model_version)
    with store.session() as session:
        d = q.latest_design(session, model_version)
        if d is None:
            raise NotFoundError(f"no accuracy sample for {model_version!r}: run "
                                f"`amberwatch accuracy design --model-version {model_version}` first")
        strata = q.design_strata(session, d["id"])
        items = q.point_items(session, d["id"])
        answers = validation_queries.reference_answers(session, [i for _, _, i in items if i is not None])
        counts = {s["id"]: dict.fromkeys(CLASSES, 0) for s in strata}
        for _, stratum_id, item_id in items:
            ref = answers.get(item_id) if item_id is not None else None
            if ref is not None and ref.answer in CLASSES:
                counts[stratum_id][ref.answer] += 1
        _check_enough(strata, counts)
        est = estimate(CLASSES, [Stratum(s["name"], s["map_class"], s["area_ha"]) for s in strata],
                       [[counts[s["id"]][c] for c in CLASSES] for s in strata])
        body = {**_report_body(d, strata, est.to_dict()), "mining_area_by_oblast": _by_oblast(strata, counts)}
        _, version = q.add_report(session, d["id"], model_version, body, created_by)
    return {**body, "version": version}


def _check_enough(strata: list[dict], counts: dict[int, dict[str, int]]) -> None:
    short = [(s, sum(counts[s["id"]].values())) for s in strata if s["area_ha"] > 0]
    short = [(s, n) for s, n in short if n < 2]
    if short:
        answered = sum(sum(c.values()) for c in counts.values())
        planned = sum(s["n_points"] for s in strata)
        raise InputError(
            f"not enough reference answers yet: {answered} of {planned} sample points have a final answer, and "
            "every stratum needs at least 2; short: "
            + ", ".join(f"{s['name']} {n} of {s['n_points']}" for s, n in short))


def _by_oblast(strata: list[dict], counts: dict[int, dict[str, int]]) -> list[dict]:
    """The area-adjusted mining area of each oblast: the same estimator on the oblast's own strata (which cover
    it exactly). The oblasts' estimates add up to the total, and so do their variances (independent strata)."""
    out = []
    for oblast in sorted({s["oblast"] for s in strata}):
        own = [s for s in strata if s["oblast"] == oblast and s["area_ha"] > 0]
        if not own:
            continue
        est = estimate(CLASSES, [Stratum(s["name"], s["map_class"], s["area_ha"]) for s in own],
                       [[counts[s["id"]][c] for c in CLASSES] for s in own])
        mining = est.per_class[CLASSES.index("mining")]
        out.append({"oblast": oblast, "total_area_ha": est.total_area, "mapped": mining.mapped_area,
                    **dataclasses.asdict(mining.area)})
    return out


def _report_body(d: dict, strata: list[dict], est: dict[str, Any]) -> dict:
    mining = next(c for c in est["per_class"] if c["name"] == "mining")
    answered = sum(s["n"] for s in est["strata"])
    return {
        "model_version": d["model_version"], "design_id": d["id"], "seed": d["seed"],
        "design_created_at": d["created_at"].isoformat(), "method": "Olofsson et al. 2014 (stratified estimator)",
        "confidence": 0.95, "classes": est["classes"], "area_unit": "ha",
        "planned": sum(s["n_points"] for s in strata), "answered": answered,
        "strata": [{**e, "oblast": s["oblast"], "n_planned": s["n_points"]}
                   for s, e in zip(strata, est["strata"], strict=True)],
        "total_area_ha": est["total_area"], "error_matrix_counts": est["counts"],
        "error_matrix_proportions": est["proportions"], "overall": est["overall"],
        "per_class": est["per_class"], "mining_area_ha": {**mining["area"], "mapped": mining["mapped_area"]},
    }


def list_reports(store: Store) -> list[dict]:
    with store.session() as session:
        rows = q.list_reports(session)
    return [{**r, "created_at": r["created_at"].isoformat()} for r in rows]


def get_report(store: Store, model_version: str, version: int | None = None) -> dict:
    check_model_version(model_version)
    with store.session() as session:
        found = q.get_report(session, model_version, version)
    if found is None:
        which = f"version {version} of " if version is not None else ""
        raise NotFoundError(f"no accuracy report for {which}{model_version!r}")
    return found


def latest_reports(store: Store) -> list[dict]:
    with store.session() as session:
        return q.latest_reports(session)
