"""Accuracy assessment (docs/accuracy.md): the Olofsson et al. (2014) estimators against the paper's own example
and a hand-computed one, the allocation rule, and design → reference answers → report through the real PostGIS,
the API and the stats page."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pytest
from conftest import run_cli
from fastapi.testclient import TestClient
from geoalchemy2.shape import from_shape
from publish_helpers import publish_polygons
from shapely.geometry import MultiPolygon, Point, box
from shapely.ops import unary_union
from sqlalchemy import text as sql
from sqlalchemy import update

from amberwatch import portal
from amberwatch.accounts import Principal
from amberwatch.accuracy.allocation import allocate
from amberwatch.accuracy.estimate import Stratum, estimate
from amberwatch.area import area_ha, sql_area_ha
from amberwatch.errors import InputError
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import AdminUnit, ModelVersion, Run
from amberwatch.usecases import accuracy, field_checks, validation

# -- Olofsson et al. 2014, section 5 (Tables 8-9, sections 5.2.1-5.2.2) -----------------------------------------
# Strata = map classes; mapped areas in 30 m pixels (0.09 ha); rows = map class, columns = reference class.
PAPER_CLASSES = ["deforestation", "forest_gain", "stable_forest", "stable_non_forest"]
PAPER_PIXELS = [200_000, 150_000, 3_200_000, 6_450_000]
PAPER_COUNTS = [[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]]
# Table 9: the error matrix in estimated area proportions, to 4 decimals
PAPER_PROPORTIONS = [[0.0176, 0, 0.0013, 0.0011], [0, 0.0110, 0.0016, 0.0024],
                     [0.0019, 0, 0.2967, 0.0213], [0.0040, 0.0020, 0.0179, 0.6212]]
# section 5.2.1: accuracy ± 95% half-width, to 2 decimals (the paper prints 0.23 and 0.01 for the producer's
# half-widths of forest gain and stable non-forest; its own eq. 7 gives 0.254 and 0.018 — docs/accuracy.md)
PAPER_USERS = [(0.88, 0.07), (0.73, 0.10), (0.93, 0.04), (0.96, 0.02)]
PAPER_PRODUCERS = [(0.75, 0.21), (0.85, 0.25), (0.93, 0.03), (0.96, 0.02)]
PAPER_OVERALL = (0.95, 0.02)
# section 5.2.2: area-adjusted estimates ± 95% half-width, in ha
PAPER_AREAS = [(21_158, 6_158), (11_686, 3_756), (285_770, 15_510), (581_386, 16_282)]


def paper_estimate():
    strata = [Stratum(c, c, px * 0.09) for c, px in zip(PAPER_CLASSES, PAPER_PIXELS, strict=True)]
    return estimate(PAPER_CLASSES, strata, PAPER_COUNTS)


def half(interval) -> float:
    return (interval.high - interval.low) / 2


def test_reproduces_the_papers_numerical_example() -> None:
    est = paper_estimate()
    assert est.counts == PAPER_COUNTS
    assert np.round(est.proportions, 4).tolist() == PAPER_PROPORTIONS
    assert est.total_area == pytest.approx(900_000)
    assert (round(est.overall.estimate, 2), round(half(est.overall), 2)) == PAPER_OVERALL
    for c, (u, uh), (p, ph), (a, ah) in zip(est.per_class, PAPER_USERS, PAPER_PRODUCERS, PAPER_AREAS, strict=True):
        assert (round(c.users.estimate, 2), round(half(c.users), 2)) == (u, uh), c.name
        assert (round(c.producers.estimate, 2), round(half(c.producers), 2)) == (p, ph), c.name
        assert (round(c.area.estimate), round(half(c.area))) == (a, ah), c.name
    # the areas add up to the map's total; the mapped areas are W_i × A
    assert sum(c.area.estimate for c in est.per_class) == pytest.approx(900_000)
    assert [c.mapped_area for c in est.per_class] == pytest.approx([18_000, 13_500, 288_000, 580_500])


# -- the worked example of docs/accuracy.md, every number by hand ---------------------------------------------
# Two oblasts, each split into mining / not mining; 1,000 ha of mapped mining in 100,000 ha.
DOC_STRATA = [Stratum("A / mining", "mining", 600.0), Stratum("A / not_mining", "not_mining", 59_400.0),
              Stratum("B / mining", "mining", 400.0), Stratum("B / not_mining", "not_mining", 39_600.0)]
DOC_COUNTS = [[45, 5], [2, 98], [40, 10], [0, 100]]  # [reference mining, reference not mining] per stratum


def test_reproduces_the_hand_computed_example_of_the_docs() -> None:
    est = estimate(["mining", "not_mining"], DOC_STRATA, DOC_COUNTS)
    assert est.counts == [[85, 15], [2, 198]]
    # p̂_11 = .006 × 45/50 + .004 × 40/50 = .0054 + .0032; p̂_12 = .006 × 5/50 + .004 × 10/50 = .0006 + .0008
    # p̂_21 = .594 × 2/100 = .01188; p̂_22 = .594 × 98/100 + .396 = .58212 + .396
    assert np.asarray(est.proportions) == pytest.approx(np.array([[0.0086, 0.0014], [0.01188, 0.97812]]))
    mining, other = est.per_class
    assert mining.users.estimate == pytest.approx(0.86)
    assert mining.producers.estimate == pytest.approx(0.0086 / 0.02048)  # 0.41992
    assert est.overall.estimate == pytest.approx(0.98672)
    # area: 100,000 × .02048 = 2,048 ha; V(p̂_·1) = .006²·.9·.1/49 + .594²·.02·.98/99 + .004²·.8·.2/49
    var = 0.006**2 * 0.09 / 49 + 0.594**2 * 0.0196 / 99 + 0.004**2 * 0.16 / 49
    assert var == pytest.approx(6.99728e-5, rel=1e-5)
    assert mining.area.estimate == pytest.approx(2048.0)
    assert mining.area.se == pytest.approx(836.50, abs=0.01)  # 100,000 × √V
    assert (mining.area.low, mining.area.high) == pytest.approx((408.47, 3687.53), abs=0.01)  # ± 1.96 SE
    # user's accuracy of mining: X̂ = .01; V = (.006²·.9·.1/49 + .004²·.8·.2/49) / .01²
    assert mining.users.se == pytest.approx(math.sqrt((0.006**2 * 0.09 / 49 + 0.004**2 * 0.16 / 49) / 0.01**2))
    assert mining.users.se == pytest.approx(0.03440, abs=1e-5)
    # producer's accuracy of mining: P̂ = .41992; V = [(.006²·.9·.1/49 + .004²·.8·.2/49)(1 - P̂)² +
    # .594²·.02·.98/99 · P̂²] / .02048²
    assert mining.producers.se == pytest.approx(0.17165, abs=1e-5)
    # overall: the same terms as the area (with two classes a wrong point is a wrong point either way)
    assert est.overall.se == pytest.approx(0.0083650, abs=1e-7)
    assert other.area.estimate == pytest.approx(97_952.0)
    assert other.area.se == pytest.approx(mining.area.se)  # two classes: the same uncertainty either way


def test_estimate_refuses_bad_input() -> None:
    with pytest.raises(InputError, match="at least 2 sample units"):
        estimate(["mining", "not_mining"], DOC_STRATA, [[1, 0], [2, 98], [40, 10], [0, 100]])
    with pytest.raises(InputError, match="strata × classes"):
        estimate(["mining", "not_mining"], DOC_STRATA, [[1, 0]])
    with pytest.raises(InputError, match="map class 'x'"):
        estimate(["mining", "not_mining"], [Stratum("s", "x", 1.0)], [[1, 1]])


# -- allocation ---------------------------------------------------------------------------------------------------
def test_allocation_gives_rare_strata_the_minimum_and_the_rest_by_area() -> None:
    # proportional shares of 500 would be 3, 297, 2, 198: the two mining strata get 50 each, the 400 left go
    # 59,400 : 39,600 = 240 : 160
    assert allocate([600, 59_400, 400, 39_600], 500, minimum=50) == [50, 240, 50, 160]
    # nothing is rare: plain proportional allocation, rounded by largest remainder to add up exactly
    assert allocate([1, 1, 1], 100, minimum=10) == [34, 33, 33]
    # proportional shares of 60 would be 0.6, 18, 41.4: the first two get the minimum, the last the 20 left
    assert allocate([1, 30, 69], 60, minimum=20) == [20, 20, 20]
    assert allocate([0, 30, 70], 100, minimum=20) == [0, 30, 70]  # empty strata get nothing
    assert sum(allocate([3, 5, 7, 11, 13], 997, minimum=50)) == 997
    with pytest.raises(InputError, match="too small"):
        allocate([1, 2, 3], 100, minimum=50)
    with pytest.raises(InputError, match="at least 2"):
        allocate([1, 2], 100, minimum=1)


# -- end to end: design → reference answers (votes, expert, field check) → report, CLI, API, stats page ----------
OBLAST_A = box(26.00, 51.00, 26.10, 51.05)
OBLAST_B = box(26.10, 51.00, 26.20, 51.05)
MINING_A = [box(26.020, 51.020, 26.030, 51.025), box(26.060, 51.010, 26.068, 51.016)]
MINING_B = [box(26.150, 51.030, 26.160, 51.036)]
FOOTPRINT = box(25.99, 50.99, 26.21, 51.06)
MODEL = "acc-test@1.0"
SEED = 4242
VOLUNTEERS = [Principal(f"volunteer-{i}", "validator") for i in range(3)]
EXPERT = Principal("expert", "analyst")
FIELD_TEAM = Principal("field-team", "field")


@pytest.fixture(scope="module")
def env(make_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from amberwatch.web.app import create_app

    tmp = tmp_path_factory.mktemp("accuracy")
    url = make_database("amberwatch_accuracy")
    settings = Settings(data_dir=tmp / "data", database_url=url)
    store = Store(settings).start()
    with store.session() as s:
        for name, geom in (("Oblast A", OBLAST_A), ("Oblast B", OBLAST_B)):
            s.add(AdminUnit(kind="oblast", name=name, source="test", geom=from_shape(MultiPolygon([geom]), 4326)))
        mv = ModelVersion(name="acc-test", version="1.0", family="sentinel2", sha256="0" * 64)
        s.add(mv)
        s.flush()
        mv_id = mv.id
    run_id = publish_polygons(store, settings, "ACCURACY_1", datetime(2024, 6, 1, tzinfo=UTC), FOOTPRINT,
                              MINING_A + MINING_B)
    with store.session() as s:
        s.execute(update(Run).where(Run.id == run_id).values(model_version_id=mv_id))
    cli_env = {"AMBERWATCH_DATABASE_URL": url, "AMBERWATCH_DATA_DIR": str(tmp / "data")}
    app = create_app(settings, store, worker=False)
    with TestClient(app) as client:
        yield {"store": store, "settings": settings, "client": client, "tmp": tmp, "cli_env": cli_env}
    store.stop()


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def cli(env: dict[str, Any], *args: str) -> CliResult:
    """``amberwatch accuracy ARGS`` in this process, with the test database in the environment."""
    res = run_cli("accuracy", *args, env=env["cli_env"])
    return CliResult(res.exit_code, res.stdout, res.stderr)


def points_by_stratum(store: Store, design_id: int) -> dict[str, list[dict]]:
    with store.session() as s:
        rows = s.execute(sql("""
            select p.id, p.validation_item_id as item, s.name as stratum, s.map_class, s.oblast,
                   ST_X(p.geom) as lon, ST_Y(p.geom) as lat
            from accuracy_points p join accuracy_strata s on s.id = p.stratum_id
            where p.design_id = :d order by p.id"""), {"d": design_id}).mappings().all()
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["stratum"], []).append(dict(r))
    return out


def vote_all(store: Store, item: int, *answers: str) -> None:
    for who, answer in zip(VOTERS_CYCLE, answers, strict=False):
        validation.vote(store, who, item, answer, "sand_road" if answer == "not_mining" else None)


VOTERS_CYCLE = VOLUNTEERS


def test_design_samples_inside_the_strata_reproducibly(env: dict[str, Any]) -> None:
    res = cli(env, "design", "--model-version", MODEL, "--n-total", "60", "--min-per-stratum", "10",
              "--seed", str(SEED))
    assert res.returncode == 0, res.stderr
    assert f"seed {SEED}" in res.stdout and "Oblast A / mining" in res.stdout
    store = env["store"]
    with store.session() as s:
        first = s.scalar(sql("select max(id) from accuracy_designs"))
    pts = points_by_stratum(store, first)
    # the rare mining strata get the minimum, the rest is shared by area (both not-mining strata are ~equal)
    sizes = {k: len(v) for k, v in pts.items()}
    assert sizes["Oblast A / mining"] == sizes["Oblast B / mining"] == 10
    assert sizes["Oblast A / not_mining"] + sizes["Oblast B / not_mining"] == 40
    assert abs(sizes["Oblast A / not_mining"] - sizes["Oblast B / not_mining"]) <= 1
    mining = unary_union(MINING_A + MINING_B)
    for stratum, rows in pts.items():
        oblast = OBLAST_A if stratum.startswith("Oblast A") else OBLAST_B
        for r in rows:
            p = Point(r["lon"], r["lat"])
            assert oblast.contains(p), (stratum, r)
            assert mining.contains(p) == (r["map_class"] == "mining"), (stratum, r)
    # both mapped pits of oblast A are sampled (ST_GeneratePoints fills a multipolygon part by part: taking its
    # first n points would sample only the first pit)
    assert all(any(g.contains(Point(r["lon"], r["lat"])) for r in pts["Oblast A / mining"]) for g in MINING_A)
    # the same seed draws the same points; another seed others
    again = accuracy.design(store, MODEL, n_total=60, minimum=10, seed=SEED)
    pts2 = points_by_stratum(store, again["design_id"])
    assert {k: [(r["lon"], r["lat"]) for r in v] for k, v in pts2.items()} == \
        {k: [(r["lon"], r["lat"]) for r in v] for k, v in pts.items()}
    other = accuracy.design(store, MODEL, n_total=60, minimum=10, seed=SEED + 1)
    pts3 = points_by_stratum(store, other["design_id"])
    assert [(r["lon"], r["lat"]) for r in pts3["Oblast A / mining"]] != \
        [(r["lon"], r["lat"]) for r in pts["Oblast A / mining"]]
    # every point is in the validation queue as accuracy_sample; points inside a site are assigned to field teams
    with store.session() as s:
        sources = s.execute(sql(
            "select v.source, v.kind, v.sample, count(*) from accuracy_points p"
            " join validation_items v on v.id = p.validation_item_id where p.design_id = :d"
            " group by 1, 2, 3"), {"d": other["design_id"]}).all()
        assert sources == [("accuracy_sample", "location", f"accuracy:{other['design_id']}", 60)]
        assigned = s.scalar(sql("select count(*) from field_assignments where assignee is null"))
    assert assigned == 3  # the three mapped sites
    env["design"] = other


def test_report_refuses_until_every_stratum_has_answers(env: dict[str, Any]) -> None:
    res = cli(env, "report", "--model-version", MODEL)
    assert res.returncode == 2
    assert "not enough reference answers yet: 0 of 60 sample points have a final answer" in res.stderr
    assert "Oblast A / mining 0 of 10" in res.stderr
    res = cli(env, "report", "--model-version", "nothing@0")
    assert res.returncode == 2 and "no accuracy sample for 'nothing@0'" in res.stderr
    res = cli(env, "design", "--model-version", "nothing@0")
    assert res.returncode == 2 and "has no published detections" in res.stderr and MODEL in res.stderr
    res = cli(env, "design", "--model-version", MODEL, "--n-total", "30", "--min-per-stratum", "10")
    assert res.returncode == 2 and "too small for 4 strata" in res.stderr


def test_report_reproduces_the_hand_computation(env: dict[str, Any]) -> None:
    store, design = env["store"], env["design"]
    pts = points_by_stratum(store, design["design_id"])
    am, an = pts["Oblast A / mining"], pts["Oblast A / not_mining"]
    bm, bn = pts["Oblast B / mining"], pts["Oblast B / not_mining"]
    # A / mining: two are not mining (agreed votes), one is disputed and the expert says mining, the rest agree
    for r in am[:2]:
        vote_all(store, r["item"], "not_mining", "not_mining", "not_mining")
    vote_all(store, am[2]["item"], "mining", "not_mining", "unsure")
    validation.decide(store, EXPERT, am[2]["item"], "mining", None)
    for r in am[3:]:
        vote_all(store, r["item"], "mining", "mining", "mining")
    # A / not mining: one pit the map missed (disputed, then the expert), one agreed 2 of 3, the rest agree
    vote_all(store, an[0]["item"], "mining", "not_mining", "unsure")
    validation.decide(store, EXPERT, an[0]["item"], "mining", None)
    vote_all(store, an[1]["item"], "not_mining", "mining", "not_mining")
    for r in an[2:]:
        vote_all(store, r["item"], "not_mining", "not_mining", "not_mining")
    # B / mining: volunteers call one point not mining, but the field team found the site active: all mining
    vote_all(store, bm[0]["item"], "not_mining", "not_mining", "not_mining")
    with store.session() as s:
        site_id = s.scalar(sql("select site_id from validation_items where id = :i"), {"i": bm[0]["item"]})
    field_checks.submit(store, env["settings"], FIELD_TEAM, field_checks.FieldCheckIn(
        id=str(uuid.uuid4()), site_id=site_id, checked_on=date(2024, 7, 1), observer="team", state="active",
        disturbance=4), [])
    # B / not mining: all agreed except the last three, still waiting for their third vote
    for r in bn[:-3]:
        vote_all(store, r["item"], "not_mining", "not_mining", "not_mining")
    for r in bn[-3:]:
        vote_all(store, r["item"], "not_mining", "not_mining")

    out = env["tmp"] / "report.json"
    res = cli(env, "report", "--model-version", MODEL, "--out", str(out))
    assert res.returncode == 0, res.stderr
    report = json.loads(out.read_text())
    assert report["version"] == 1 and report["design_id"] == design["design_id"] and report["seed"] == SEED + 1

    # -- by hand (docs/accuracy.md): counts per stratum [mining, not mining] and the areas of the strata
    counts = {"Oblast A / mining": (8, 2), "Oblast A / not_mining": (1, len(an) - 1),
              "Oblast B / mining": (10, 0), "Oblast B / not_mining": (0, len(bn) - 3)}
    areas = {s["name"]: s["area"] for s in report["strata"]}
    with store.session() as s:  # the strata areas are the geodesic areas of oblast ∩ / − detections
        mined = {n: s.scalar(sql(f"select {sql_area_ha('ST_GeomFromText(:w, 4326)')}"), {"w": g.wkt})
                 for n, g in (("A", unary_union(MINING_A)), ("B", unary_union(MINING_B)))}
    assert areas["Oblast A / mining"] == pytest.approx(mined["A"], rel=1e-9)
    assert areas["Oblast B / mining"] == pytest.approx(mined["B"], rel=1e-9)
    assert areas["Oblast A / mining"] + areas["Oblast A / not_mining"] == pytest.approx(area_ha(OBLAST_A), rel=1e-6)
    total = sum(areas.values())
    w = {k: a / total for k, a in areas.items()}
    n = {k: sum(c) for k, c in counts.items()}
    share = {k: c[0] / n[k] for k, c in counts.items()}  # share of reference mining in each stratum
    m_strata, o_strata = ("Oblast A / mining", "Oblast B / mining"), ("Oblast A / not_mining", "Oblast B / not_mining")
    p11 = sum(w[k] * share[k] for k in m_strata)
    p12 = sum(w[k] * (1 - share[k]) for k in m_strata)
    p21 = sum(w[k] * share[k] for k in o_strata)
    p22 = sum(w[k] * (1 - share[k]) for k in o_strata)
    assert report["error_matrix_counts"] == [[18, 2], [1, len(an) + len(bn) - 4]]
    assert np.asarray(report["error_matrix_proportions"]) == pytest.approx(np.array([[p11, p12], [p21, p22]]))
    var = sum(w[k] ** 2 * share[k] * (1 - share[k]) / (n[k] - 1) for k in counts)
    mining_area = report["mining_area_ha"]
    assert mining_area["estimate"] == pytest.approx(total * (p11 + p21))
    assert mining_area["se"] == pytest.approx(total * math.sqrt(var))
    assert (mining_area["low"], mining_area["high"]) == pytest.approx(
        (total * (p11 + p21 - 1.96 * math.sqrt(var)), total * (p11 + p21 + 1.96 * math.sqrt(var))))
    assert mining_area["mapped"] == pytest.approx(areas["Oblast A / mining"] + areas["Oblast B / mining"])
    mining = report["per_class"][0]
    assert mining["users"]["estimate"] == pytest.approx(p11 / (p11 + p12))
    assert mining["producers"]["estimate"] == pytest.approx(p11 / (p11 + p21))
    assert report["overall"]["estimate"] == pytest.approx(p11 + p22)
    assert (report["answered"], report["planned"]) == (57, 60)
    # by oblast: the same estimator on each oblast's own two strata, in hectares directly
    by = {o["oblast"]: o for o in report["mining_area_by_oblast"]}
    a_m, a_n, k = areas["Oblast A / mining"], areas["Oblast A / not_mining"], len(an)
    assert by["Oblast A"]["estimate"] == pytest.approx(a_m * 8 / 10 + a_n * 1 / k)
    assert by["Oblast A"]["se"] == pytest.approx(math.sqrt(a_m**2 * 0.8 * 0.2 / 9 + a_n**2 * (1 / k) * (1 - 1 / k)
                                                           / (k - 1)))
    assert by["Oblast B"]["estimate"] == pytest.approx(areas["Oblast B / mining"])  # all mining, none missed
    assert by["Oblast B"]["se"] == pytest.approx(0.0)
    assert sum(o["estimate"] for o in by.values()) == pytest.approx(mining_area["estimate"])
    assert sum(o["se"] ** 2 for o in by.values()) == pytest.approx(mining_area["se"] ** 2)
    assert "disturbed (mining) area" in res.stdout and f"{mining_area['estimate']:,.1f} ha" in res.stdout
    env["report"] = report


def test_api_and_stats_page_publish_the_report(env: dict[str, Any]) -> None:
    client, report = env["client"], env["report"]
    listed = client.get("/api/accuracy").json()["reports"]
    assert [(r["model_version"], r["version"]) for r in listed] == [(MODEL, 1)]
    assert listed[0]["mining_area_ha"] == report["mining_area_ha"]
    got = client.get(f"/api/accuracy/{MODEL}")
    assert got.status_code == 200
    body = got.json()
    assert body["error_matrix_counts"] == report["error_matrix_counts"] and body["version"] == 1
    assert client.get(f"/api/accuracy/{MODEL}?version=1").json()["mining_area_ha"] == report["mining_area_ha"]
    assert client.get("/api/accuracy/nothing@0").status_code == 404
    assert client.get(f"/api/accuracy/{MODEL}?version=0").status_code == 400
    # a second report is the next version; the list shows both, the latest first
    accuracy.report(env["store"], MODEL)
    assert [r["version"] for r in client.get("/api/accuracy").json()["reports"]] == [2, 1]
    for lang in ("en", "uk"):
        html = client.get(f"/stats?lang={lang}").text
        t = portal.translator(lang)
        m = report["mining_area_ha"]
        assert t("accuracy.title") in html
        assert t("accuracy.area", estimate=portal.format_number(m["estimate"], 0),
                 low=portal.format_number(m["low"], 0), high=portal.format_number(m["high"], 0),
                 mapped=portal.format_number(m["mapped"], 0)) in html
        assert f'data-model-version="{MODEL}" data-version="2"' in html
        overall = report["overall"]
        assert (f"{portal.format_number(100 * overall['estimate'], 1)}&nbsp;%&nbsp;±&nbsp;"
                f"{portal.format_number(50 * (overall['high'] - overall['low']), 1)}") in html


def test_stats_page_shows_the_report_in_a_browser(env: dict[str, Any], browser: Any) -> None:
    """Debian's chromium renders /stats as the app serves it (every request of the page goes to the app)."""
    client, origin = env["client"], "http://amberwatch.test"

    def from_app(route: Any) -> None:
        res = client.get(route.request.url.removeprefix(origin), headers={"Accept-Encoding": "identity"})
        headers = {k: v for k, v in res.headers.items() if k.lower() not in ("content-encoding", "content-length")}
        route.fulfill(status=res.status_code, headers=headers, body=res.content)

    m = env["report"]["mining_area_ha"]
    t = portal.translator("uk")
    page = browser.new_page()
    page.route(origin + "/**", from_app)
    page.goto(origin + "/stats?lang=uk")
    section = page.locator("#accuracy")
    assert section.is_visible()
    assert t("accuracy.title") in page.inner_text("#accuracy-h")
    report = page.locator('article[data-version="2"]')
    assert f"{portal.format_number(m['low'], 0)} – {portal.format_number(m['high'], 0)}" in \
        report.locator(".accuracy-area").inner_text()
    assert report.locator(".accuracy-matrix tbody tr").count() == 2
    oblasts = report.locator(".accuracy-oblasts tbody tr")
    assert [oblasts.nth(i).locator("th").inner_text() for i in range(oblasts.count())] == [
        "Oblast A", "Oblast B"]
    assert report.locator('.accuracy-classes tr[data-class="mining"] td.ci').inner_text() == \
        f"{portal.format_number(m['low'], 0)} – {portal.format_number(m['high'], 0)}"


def test_admins_design_and_report_through_the_api(env: dict[str, Any]) -> None:
    from amberwatch.usecases import keys as keys_uc

    client, store = env["client"], env["store"]
    _, admin = keys_uc.create_key(store, "accuracy-admin", "admin")
    _, volunteer = keys_uc.create_key(store, "accuracy-volunteer", "validator")
    body = {"model_version": MODEL, "n_total": 40, "min_per_stratum": 10, "seed": 9}
    assert client.post("/api/accuracy/designs", json=body).status_code == 401
    as_volunteer = {"Authorization": f"Bearer {volunteer}"}
    assert client.post("/api/accuracy/designs", json=body, headers=as_volunteer).status_code == 403
    assert client.post(f"/api/accuracy/{MODEL}/reports", headers=as_volunteer).status_code == 403
    headers = {"Authorization": f"Bearer {admin}"}
    bad = client.post("/api/accuracy/designs", json={**body, "n_total": 30}, headers=headers)
    assert bad.status_code == 400 and "too small for 4 strata" in bad.json()["detail"]
    assert client.post("/api/accuracy/designs", json={**body, "x": 1}, headers=headers).status_code == 422
    # a report of the answered design is the next version, with the same estimate
    res = client.post(f"/api/accuracy/{MODEL}/reports", headers=headers)
    assert res.status_code == 201 and res.json()["version"] == 3
    assert res.json()["mining_area_ha"] == env["report"]["mining_area_ha"]
    # a new design has no answers yet: its report is refused with the counts
    res = client.post("/api/accuracy/designs", json=body, headers=headers)
    assert res.status_code == 201, res.text
    assert {s["name"]: s["n_points"] for s in res.json()["strata"] if s["map_class"] == "mining"} == {
        "Oblast A / mining": 10, "Oblast B / mining": 10}
    res = client.post(f"/api/accuracy/{MODEL}/reports", headers=headers)
    assert res.status_code == 400
    assert res.json()["detail"].startswith("not enough reference answers yet: 0 of 40 sample points")
    # fixed sizes: every stratum, by name
    sizes = {"Oblast A / mining": 4, "Oblast A / not_mining": 6, "Oblast B / mining": 3, "Oblast B / not_mining": 5}
    res = client.post("/api/accuracy/designs", json={"model_version": MODEL, "sizes": {"Oblast A / mining": 4}},
                      headers=headers)
    assert res.status_code == 400 and "missing Oblast A / not_mining, Oblast B / mining" in res.json()["detail"]
    res = client.post("/api/accuracy/designs", json={"model_version": MODEL, "sizes": {**sizes, "Narnia": 3}},
                      headers=headers)
    assert res.status_code == 400 and "no stratum named 'Narnia'" in res.json()["detail"]
    res = client.post("/api/accuracy/designs", json={"model_version": MODEL, "sizes": sizes}, headers=headers)
    assert res.status_code == 201 and {s["name"]: s["n_points"] for s in res.json()["strata"]} == sizes


def test_cli_size_option_parsing() -> None:
    from amberwatch.cli.accuracy import parse_sizes

    assert parse_sizes(["Rivne / mining=60", " Volyn / not_mining = 7"]) == {
        "Rivne / mining": 60, "Volyn / not_mining": 7}
    for bad in ("Rivne / mining", "=5", "Rivne / mining=-1", "Rivne / mining=x"):
        with pytest.raises(InputError, match="write STRATUM=N"):
            parse_sizes([bad])
