"""docs/openapi.json matches what the server does: schemathesis generates requests for every
operation from the document (valid and invalid ones) and checks each response against it
(documented status, content type and schema; never a server error). Once without attestation
(every /v1 call but the document is refused with a documented 401), once attested as a caller
in every group (the body bytes are serialized here so the attestation binds them exactly)."""

from __future__ import annotations

import json
import sys

import pytest
import requests
import schemathesis
from brokerlab import NET, ONCALL, Broker, raw_http

# The HTTP API's schema against schemathesis: the same HTTP layer whatever the store, so on
# one backend (SQLite) only; the behaviour behind it runs on both in the other files.
pytestmark = pytest.mark.backends("sqlite")
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

EXAMPLES = 40
UNATTESTED = {"/healthz", "/readyz", "/metrics", "/v1/openapi.json"}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    # Watches are held 1s at most here: a generated after_seq above the list's is a watch.
    b = Broker(tmp_path_factory.mktemp("openapi"), workflows=[NET, ONCALL],
               extra='[http]\nwatch_hold = "1s"\n').start()
    b.root_person = b.person("root", 0, ["jitadmin", "netops", "netleads", "dba", "dbleads", "oncall"],
                             host="web-1")
    # Something to find: a pending request and a grant.
    alice = b.person("alice", 1001, ["netops", "dba", "oncall"], host="web-2")
    b.ok(alice, "POST", "/v1/requests", {"rule": "net-debug", "reason": "openapi"}, status=201)
    b.ok(alice, "POST", "/v1/requests", {"rule": "db-x", "reason": "openapi"}, status=201)
    yield b
    b.close()


@pytest.fixture(scope="module")
def operations(api):
    # schemathesis' pytest plugin does not work with pytest 9: drive its strategies directly.
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{api.port}/v1/openapi.json")
    return [r.ok() for r in schema.get_all_operations()]


def for_every_case(operations, check, modes=(GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):
    """Run `check(case)` on generated cases of every operation, valid and (by default) invalid ones."""
    assert len(operations) >= 16  # (schemathesis leaves out the document's own endpoint)
    for op in operations:
        for mode in modes:
            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case):
                check(case)

            try:
                run()
            except Unsatisfiable:
                # Nothing to make invalid (no parameters, no body): only valid cases exist.
                assert mode is GenerationMode.NEGATIVE and not op.body and not op.query, op.label


def prepared(case, api) -> requests.PreparedRequest:
    kw = case.as_transport_kwargs(base_url=f"http://127.0.0.1:{api.port}")
    if "json" in kw:
        kw["data"] = json.dumps(kw.pop("json")).encode()
        kw.setdefault("headers", {})["Content-Type"] = "application/json"
    kw.pop("timeout", None)
    kw.pop("verify", None)
    kw.pop("allow_redirects", None)
    return requests.Request(**{k: v for k, v in kw.items() if k in ("method", "url", "headers", "data", "params", "cookies", "files")}).prepare()


def send(req: requests.PreparedRequest) -> requests.Response:
    with requests.Session() as s:
        return s.send(req, timeout=30, allow_redirects=False)


def body_of(req: requests.PreparedRequest) -> bytes:
    if req.body is None:
        return b""
    return req.body if isinstance(req.body, bytes) else req.body.encode()


def test_unattested_calls_conform(api, operations):
    for_every_case(operations, lambda case: unattested(case, api))


def unattested(case, api):
    req = prepared(case, api)
    req.headers.pop("Authorization", None)
    resp = send(req)
    case.validate_response(resp)
    if case.path not in UNATTESTED and resp.status_code not in (404, 405, 413):
        assert resp.status_code in (400, 401), (case.method, req.path_url, resp.status_code, resp.text[:200])
        assert resp.json()["error"]["code"], resp.text


def test_attested_calls_conform(api, operations):
    # Valid data only: what makes a generated case invalid may be its Authorization header,
    # which is replaced here; invalid bodies and queries with a valid attestation are in
    # test_bad_input.py, invalid everything without one in the unattested run.
    for_every_case(operations, lambda case: attested(case, api), modes=(GenerationMode.POSITIVE,))


def attested(case, api):
    req = prepared(case, api)
    who = api.root_person
    path = req.path_url.split("?", 1)[0]
    token = who.host.attest(user=who.name, uid=who.uid, groups=who.groups, method=req.method, path=path,
                            body=body_of(req))
    req.headers["Authorization"] = f"JitAttest {token}"
    resp = send(req)
    # ignored_auth judges the Authorization value schemathesis generated, which is replaced here
    # by a valid attestation; the unattested run covers it.
    case.validate_response(resp, excluded_checks=[schemathesis.checks.ignored_auth])
    assert resp.status_code < 500, (case.method, req.path_url, resp.text[:300])


def test_the_committed_document_is_the_generators_output():
    from brokerlab import REPO
    sys.path.insert(0, str(REPO / "scripts"))
    import gen_openapi
    committed = json.loads((REPO / "docs" / "openapi.json").read_text())
    assert committed == gen_openapi.doc, "docs/openapi.json is stale: python3 scripts/gen_openapi.py > docs/openapi.json"


def test_the_served_document_is_the_committed_one(api):
    from brokerlab import REPO
    served = raw_http(api.port, "GET", "/v1/openapi.json")
    assert served.json == json.loads((REPO / "docs" / "openapi.json").read_text())
    doc = served.json
    # Every route the server has is documented, and nothing else.
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == {
        ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/v1/openapi.json"),
        ("POST", "/v1/requests"), ("GET", "/v1/requests"), ("GET", "/v1/requests/{id}"),
        ("POST", "/v1/requests/{id}/approve"), ("POST", "/v1/requests/{id}/deny"),
        ("POST", "/v1/requests/{id}/cancel"), ("GET", "/v1/grants"), ("GET", "/v1/grants/{id}"),
        ("POST", "/v1/grants/{id}/revoke"), ("GET", "/v1/revocations"), ("POST", "/v1/sealed/used"),
        ("POST", "/v1/hosts"),
        ("GET", "/v1/hosts"), ("POST", "/v1/hosts/{name}/retire"), ("GET", "/v1/audit"),
    }
    for method, path in documented:
        concrete = path.replace("{id}", "01JNOTHERE0000000000000000").replace("{name}", "nohost")
        r = raw_http(api.port, method, concrete)
        assert r.status not in (404, 405) or r.json["error"]["code"] == "not_found", (method, path, r.status)
        if r.status == 404:
            assert "no endpoint" not in r.json["error"]["message"], (method, path)
