"""Property-based API testing: schemathesis over the whole OpenAPI of the real app, zero 5xx allowed.

The real app (``create_app`` with the session's PostGIS, ``publish.refresh``, MapServer, pygeoapi) runs under
uvicorn on a free port. Two schemas are exercised, each operation with a small bounded number of examples:

* the app's own ``/openapi.json``: every operation, anonymously. Writes need an API key: each write is first
  called without one and must be refused (401/403); only then are the writes fuzzed too (anonymous fuzzing
  must then only ever be refused or rejected, never run pipelines or jobs). Should any write answer an
  anonymous call, the fuzzing keeps to GET operations and ``POST /ows`` (read-only MapServer requests) and
  ``test_anonymous_writes_are_refused`` fails with the list;
* pygeoapi's ``/ogcapi/openapi?f=json`` (collections, items, item, queryables, schema of every layer).

Only the ``not_a_server_error`` check runs: the point is "no 5xx", not full conformance to the documents.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from publish_helpers import publish_settings, uvicorn_thread
from schemathesis.checks import not_a_server_error

from amberwatch.store.db import Store

EXAMPLES = 12  # per operation: about 60 operations -> a bounded run (~1-2 minutes on 2 cores)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck))
READ_ONLY_POSTS = {"ows_post"}  # operation ids of POSTs that change nothing
# open to anonymous callers by design (docs/portal.md#alerts, README "Report amber mining")
PUBLIC_WRITES = {"create_subscription", "unsubscribe", "create_report"}


@pytest.fixture(scope="module")
def app_url(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from amberwatch.web.app import create_app

    # rate limits far above the fuzzing rate: a 429 must not hide what the request would have answered
    app_settings = publish_settings(store, tmp_path_factory.mktemp("schemathesis")).model_copy(
        update={"rate_limit_expensive_reads": "100000/minute", "rate_limit_writes": "100000/minute"})
    kwargs = {"worker": False} if "worker" in inspect.signature(create_app).parameters else {}
    app = create_app(app_settings, store, **kwargs)
    with uvicorn_thread(app, app_settings.port, "/openapi.json", timeout=60) as url:
        yield url


STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.hooks["response"].append(lambda response, *args, **kwargs: STATUSES.update([response.status_code]))
        yield s
    print(f"schemathesis answers by status: {dict(sorted(STATUSES.items()))}")


@pytest.fixture(scope="module")
def app_schema(app_url: str, session: requests.Session):
    schema = schemathesis.openapi.from_url(f"{app_url}/openapi.json")
    if all(status in (401, 403) for status in anonymous_write_answers(app_url, session).values()):
        return schema
    return schema.include(lambda ctx: ctx.operation.method.upper() == "GET"
                          or ctx.operation.definition.raw.get("operationId") in READ_ONLY_POSTS)


# pygeoapi's document points into schemas.opengis.net and GitHub for shared parameters and responses; this machine
# (and CI) has no internet, so those references are replaced by equivalent inline definitions.
_REMOTE_PARAMETERS = {
    "featureId": {"name": "featureId", "in": "path", "required": True, "schema": {"type": "string"}},
    "datetime": {"name": "datetime", "in": "query", "required": False, "schema": {"type": "string"}},
    "sortby": {"name": "sortby", "in": "query", "required": False, "schema": {"type": "string"}},
}


def inline_remote_refs(node):
    """``node`` with every non-local ``$ref`` replaced (parameters by definition, responses and schemas by stubs)."""
    if isinstance(node, list):
        return [inline_remote_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        name = ref.rsplit("/", 1)[-1].removesuffix(".yaml")
        if "parameters" in ref:
            return dict(_REMOTE_PARAMETERS.get(name, {"name": name, "in": "query", "schema": {"type": "string"}}))
        if "responses" in ref:
            return {"description": name}
        return {}
    return {key: inline_remote_refs(value) for key, value in node.items()}


@pytest.fixture(scope="module")
def ogcapi_schema(app_url: str, session: requests.Session):
    doc = inline_remote_refs(session.get(f"{app_url}/ogcapi/openapi?f=json", timeout=60).json())
    return schemathesis.openapi.from_dict(doc).include(method="GET")


@pytest.fixture(autouse=True)
def _schemathesis_node_id(request: pytest.FixtureRequest) -> None:
    """schemathesis 4's lazy-schema tests read ``node._nodeid``, which pytest 9 no longer sets on test items."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


app_api = schemathesis.pytest.from_fixture("app_schema")
ogc_api = schemathesis.pytest.from_fixture("ogcapi_schema")


@app_api.parametrize()
@FUZZ
def test_app_api_no_server_errors(case, app_url: str, session: requests.Session):
    case.call_and_validate(base_url=app_url, session=session, checks=[not_a_server_error], timeout=60)


@ogc_api.parametrize()
@FUZZ
def test_ogcapi_no_server_errors(case, app_url: str, session: requests.Session):
    case.call_and_validate(base_url=f"{app_url}/ogcapi", session=session, checks=[not_a_server_error], timeout=60)


def anonymous_write_answers(app_url: str, session: requests.Session) -> dict[str, int]:
    """``METHOD path`` -> status of every state-changing operation called without a key and without a body."""
    doc = session.get(f"{app_url}/openapi.json", timeout=30).json()
    answers = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method.upper() not in {"POST", "PUT", "PATCH", "DELETE"} or \
                    op.get("operationId") in READ_ONLY_POSTS | PUBLIC_WRITES:
                continue
            target = path
            for name in [p["name"] for p in op.get("parameters", []) if p.get("in") == "path"]:
                target = target.replace(f"{{{name}}}", "1")
            response = session.request(method, f"{app_url}{target}", timeout=60)
            answers[f"{method.upper()} {target}"] = response.status_code
    return answers


def test_anonymous_writes_are_refused(app_url: str, session: requests.Session):
    """Every state-changing operation in the app's OpenAPI, called without a key: 401/403, never a 5xx."""
    answers = anonymous_write_answers(app_url, session)
    assert answers, "no write operations found"
    assert all(status < 500 for status in answers.values()), answers
    assert all(status in (401, 403) for status in answers.values()), answers
