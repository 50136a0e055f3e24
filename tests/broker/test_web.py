"""The web pages at the HTTP level, with a real jitbroker and a real OpenID Connect provider
(tests/harness/oidc_provider.py) on loopback: sign-in (state, PKCE, nonce, ID token, claim
mapping), what the pages and the API answer the same person, the CSRF token and Origin on
every form, security headers and cookies, sessions ending (sign-out, an admin, idle), the
audit trail and webhooks saying how a person was identified. The browser tests are in
tests/e2e_web."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import urllib.parse

import pytest
from brokerlab import JITBROKER, NET, ONCALL, Broker, HookReceiver, PostgresStore, SqliteStore, wait_for

import oidc_provider
from webclient import WebClient
from testca import tls_files

IDP_GROUPS = {"idp-netops": ["netops"], "idp-netleads": ["netleads"], "idp-dbleads": ["dbleads"],
              "idp-admins": ["jitadmin"]}
PEOPLE = {"alice": ["idp-netops"], "bob": ["idp-netleads", "idp-dbleads"], "carol": ["idp-netleads"],
          "admin": ["idp-admins"]}


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    p = oidc_provider.start(tmp_path_factory.mktemp("idp") / "idp.log")
    for name, groups in PEOPLE.items():
        p.set_user(f"sub-{name}", {"preferred_username": name, "groups": groups, "email": f"{name}@example.com"})
    p.set_user("sub-nobody", {"email": "nobody@example.com"})
    yield p
    p.stop()


def web_toml(idp, secret, **over) -> str:
    web = {"public_url": "http://127.0.0.1:PORT", "issuer": idp.issuer, "client_id": "jitbroker",
           "client_secret_file": str(secret), "ticket_url": "https://tracker.example.com/browse/{ticket}", **over}
    lines = ["[web]"] + [f"{k} = {json.dumps(v)}" for k, v in web.items()]
    lines += ["[web.groups]"] + [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in IDP_GROUPS.items()]
    return "\n".join(lines) + "\n"


def web_broker(tmp_path, idp, name="b", webhooks=None, tls=None, store=None, replica=None, public_url=None,
               signing_key=None, **over) -> Broker:
    """A started broker with [web]. Replicas pass the first one's `store` and `public_url` (the
    one address browsers use, as behind a load balancer)."""
    root = tmp_path / name
    root.mkdir()
    secret = root / "oidc-secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    extra = ""
    if tls:
        extra = f"[tls]\ncert = {json.dumps(str(tls[1]))}\nkey = {json.dumps(str(tls[2]))}\n"
        over.setdefault("public_url", "https://127.0.0.1:PORT")
    if public_url:
        over["public_url"] = public_url
    b = Broker(root, workflows=[NET, ONCALL], webhooks=webhooks, store=store, replica=replica,
               signing_key=signing_key, extra=extra + web_toml(idp, secret, **over))
    b.config.write_text(b.config.read_text().replace(":PORT", f":{b.port}"))
    if not tls:
        return b.start()
    # Over TLS: wait for /healthz over https (Broker.start asks in plain HTTP).
    import ssl
    import urllib.request
    b.scheme = "https"
    with open(b.log, "ab") as log:
        b.proc = subprocess.Popen([JITBROKER, "--config", str(b.config), "serve"], stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=subprocess.STDOUT)
    ctx = ssl.create_default_context(cafile=str(tls[0]))

    def up():
        assert b.proc.poll() is None, b.log.read_text()
        try:
            return urllib.request.urlopen(b.url + "/healthz", context=ctx, timeout=2).status == 200
        except OSError:
            return False

    wait_for(up, 30, "jitbroker over TLS")
    return b


@pytest.fixture()
def web(tmp_path, idp):
    b = web_broker(tmp_path, idp)
    yield b
    b.close()


@pytest.fixture()
def api(web):
    return {
        "alice": web.person("alice", 1001, ["netops", "dba"], host="web-1"),
        "bob": web.person("bob", 1002, ["netleads", "dbleads"], host="web-2"),
        "carol": web.person("carol", 1003, ["netleads"], host="web-2"),
        "admin": web.person("admin", 1006, ["jitadmin"], host="adm-1"),
    }


def browser(b: Broker, who: str) -> WebClient:
    c = WebClient(b.url)
    page = c.sign_in(f"sub-{who}")
    assert f'id="signed-in-as">{who}<' in page.body, page.body[:3000]
    return c


def audit_rows(b: Broker, kind: str) -> list[dict]:
    with b.db() as c:
        return [json.loads(d) | {"_actor": a, "_host": h} for a, h, d in
                c.execute("SELECT actor, host, data FROM audit WHERE type = ? ORDER BY id", (kind,))]


def request_ids(page: str) -> list[str]:
    return re.findall(r'<article class="card[^"]*" data-request="([0-9A-Z]{26})"', page)


def test_sign_in_through_the_provider_starts_an_audited_session(web, api, idp):
    c = browser(web, "bob")
    assert "__Host-" not in "".join(c.cookies) and "jitbroker_session" in c.cookies
    (start,) = audit_rows(web, "session.start")
    assert start["identity"] == {"source": "oidc", "issuer": idp.issuer, "subject": "sub-bob", "user": "bob",
                                 "groups": ["dbleads", "netleads"]}
    assert start["_actor"] == "bob" and start["_host"] == ""
    listed = json.loads(web.cli("session", "list", "--json").stdout)["sessions"]
    assert [(s["user"], s["subject"], s["ended"]) for s in listed] == [("bob", "sub-bob", None)]
    # The store keeps only hashes of the token and the state.
    token = c.cookies["jitbroker_session"]
    with web.db() as db:
        dump = "\n".join(str(r) for t in ("web_sessions", "web_logins") for r in db.execute(f"SELECT * FROM {t}"))
    assert token not in dump
    m = web.metrics()
    assert m['jitbroker_web_signins_total{outcome="ok"}'] == 1


def test_pages_carry_security_headers_and_cookies_their_attributes(web, idp):
    c = WebClient(web.url)
    first = c.get("/ui/pending", follow=False)
    assert first.status == 303 and first.headers["location"] == "/ui/login?next=/ui/pending"
    login = c.get(first.headers["location"], follow=False)
    assert login.status == 303 and login.headers["location"].startswith(idp.issuer + "/oauth2/authorize?")
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(login.headers["location"]).query))
    assert q["code_challenge_method"] == "S256" and q["nonce"] and q["state"] and "openid" in q["scope"].split()
    (cookie,) = login.set_cookies
    assert cookie.startswith("jitbroker_signin=" + q["state"] + ";") and "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie and "Path=/ui/" in cookie and "Secure" not in cookie
    page = browser(web, "carol").get("/ui/pending")
    for resp in (page, c.get("/ui/static/style.css"), WebClient(web.url).get("/ui/nope")):
        h = resp.headers
        assert h["content-security-policy"] == ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"), h
        assert h["x-frame-options"] == "DENY" and h["referrer-policy"] == "same-origin"
        assert h["x-content-type-options"] == "nosniff"
    assert "<script" not in page.body and " on" not in re.sub(r">[^<]*<", "><", page.body).lower().replace(" one", "")
    assert page.headers["cache-control"] == "no-store" and "strict-transport-security" not in page.headers


def test_sign_in_refusals(web, idp):
    c = WebClient(web.url)
    # A callback this browser did not start (state not bound to it by its cookie).
    r = c.get("/ui/callback?code=x&state=y")
    assert r.status == 403 and 'data-code="signin_refused"' in r.body and "not started in this browser" in r.body
    # The provider says no.
    r = c.get("/ui/callback?error=access_denied&error_description=%3Cb%3Eno%3C%2Fb%3E")
    assert r.status == 403 and "access_denied" in r.body and "&#60;b&#62;no" in r.body
    # A person without the user claim: no session.
    form = c.get("/ui/pending")
    r = c.request("POST", form.url, form={"sub": "sub-nobody"})
    assert r.status == 403 and "preferred_username" in r.body, r.body
    assert "jitbroker_session" not in c.cookies and not audit_rows(web, "session.start")
    # A state used once cannot be used again (the callback of a finished sign-in, replayed).
    c2 = WebClient(web.url)
    login = c2.get("/ui/login", follow=False)
    form = c2.get(login.headers["location"])
    back = c2.request("POST", form.url, form={"sub": "sub-carol"}, follow=False)
    callback = back.headers["location"]
    assert c2.get(callback).status == 200
    c2.cookies["jitbroker_signin"] = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))["state"]
    again = c2.get(callback)
    assert again.status == 403 and "unknown or took longer" in again.body
    assert web.metrics()['jitbroker_web_signins_total{outcome="refused"}'] >= 3


def test_user_text_is_escaped_on_every_page(web, api):
    """Reason, ticket, comment and names print as text everywhere (askama escapes by default;
    the CSP would also block scripts, but escaping must not depend on it)."""
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    a = api["alice"]
    rid = web.ok(a, "POST", "/v1/requests", {"rule": "db-restart", "reason": "r " + evil, "ticket": "T" + evil},
                 status=201)["id"]
    bg = web.ok(a, "POST", "/v1/requests", {"rule": "db-fix", "reason": "bg " + evil, "break_glass": True},
                status=201)
    bob = browser(web, "bob")
    page = bob.get(f"/ui/requests/{rid}/approve")
    assert bob.post(f"/ui/requests/{rid}/approve", {"csrf": page.csrf, "comment": "c " + evil}).status == 200
    admin_groups = browser(web, "admin")
    pages = [bob.get("/ui/pending"), bob.get(f"/ui/requests/{rid}"), bob.get("/ui/grants"),
             bob.get(f"/ui/grants/{bg['grant_id']}/revoke"), browser(web, "alice").get("/ui/requests"),
             admin_groups.get("/ui/audit")]
    for p in pages:
        assert p.status == 200, (p.url, p.status)
        assert "<script>alert" not in p.body and "<img src=x" not in p.body, p.url
        assert "&#60;script&#62;alert(1)&#60;/script&#62;&#34;&#62;&#60;img src=x onerror=alert(2)&#62;" in p.body, p.url


def test_the_page_and_the_api_give_the_same_answers(web, api):
    a, b, carol = api["alice"], api["bob"], api["carol"]
    net = web.ok(a, "POST", "/v1/requests", {"rule": "net-debug", "reason": "loss on eth0"}, status=201)["id"]
    db = web.ok(a, "POST", "/v1/requests", {"rule": "db-restart", "reason": "replica lag"}, status=201)["id"]
    web.ok(b, "POST", f"/v1/requests/{net}/approve")
    for who, person in (("bob", b), ("carol", carol), ("alice", a)):
        page = browser(web, who).get("/ui/pending")
        listed = [r["id"] for r in web.ok(person, "GET", "/v1/requests?decidable=true")["requests"]]
        assert request_ids(page.body) == listed, (who, listed)
    # bob approved net already: only db waits for him; carol sees net only; alice nothing.
    assert [r["id"] for r in web.ok(b, "GET", "/v1/requests?decidable=true")["requests"]] == [db]
    assert [r["id"] for r in web.ok(carol, "GET", "/v1/requests?decidable=true")["requests"]] == [net]
    # A request carol may not see: 404 from both, with the same code.
    assert web.call(carol, "GET", f"/v1/requests/{db}").status == 404
    page = browser(web, "carol").get(f"/ui/requests/{db}")
    assert page.status == 404 and 'data-code="not_found"' in page.body


def test_forms_need_the_session_csrf_token_and_the_broker_origin(web, api):
    rid = web.ok(api["alice"], "POST", "/v1/requests", {"rule": "db-restart", "reason": "r"}, status=201)["id"]
    bob, carol = browser(web, "bob"), browser(web, "carol")
    token = bob.get(f"/ui/requests/{rid}/approve").csrf
    for form, headers, code in (({}, {}, "csrf"),
                                ({"csrf": "0" * 64}, {}, "csrf"),
                                ({"csrf": carol.get("/ui/pending").csrf}, {}, "csrf"),
                                ({"csrf": token}, {"Origin": "http://evil.example"}, "bad_origin")):
        r = bob.post(f"/ui/requests/{rid}/approve", form, headers=headers)
        assert r.status == 403 and f'data-code="{code}"' in r.body, (form, r.status, r.body[:500])
    r = bob.request("POST", f"/ui/requests/{rid}/approve", raw=json.dumps({"csrf": token}).encode(),
                    headers={"Content-Type": "application/json", "Origin": bob.base})
    assert r.status == 415
    assert web.ok(api["alice"], "GET", f"/v1/requests/{rid}")["state"] == "pending"
    r = bob.post(f"/ui/requests/{rid}/approve", {"csrf": token, "comment": "ok by me"})
    assert r.status == 200 and "You approved this request" in r.body
    req = web.ok(api["alice"], "GET", f"/v1/requests/{rid}")
    assert req["state"] == "approved" and req["approvals"][0] | {"at": None} == {
        "user": "bob", "host": "", "at": None, "comment": "ok by me", "source": "oidc"}


def test_a_session_acts_only_for_its_own_person(web, api, idp):
    a = api["alice"]
    rid = web.ok(a, "POST", "/v1/requests", {"rule": "net-debug", "reason": "mine"}, status=201)["id"]
    alice = browser(web, "alice")
    page = alice.get(f"/ui/requests/{rid}")
    assert page.status == 200 and 'id="approve"' not in page.body and 'id="deny"' not in page.body
    # A forged POST with her own valid token is refused by the same rule as the API's.
    r = alice.post(f"/ui/requests/{rid}/approve", {"csrf": page.csrf})
    api_answer = web.call(a, "POST", f"/v1/requests/{rid}/approve")
    assert r.status == api_answer.status == 403 and 'data-code="self_approval"' in r.body
    assert api_answer.json["error"]["message"] in r.body.replace("&#39;", "'")
    # The confirmation page is refused too, for the same reason.
    assert alice.get(f"/ui/requests/{rid}/approve").status == 403
    # Not in an approving group: refused.
    r = browser(web, "admin").post(f"/ui/requests/{rid}/deny", {"csrf": browser(web, "admin").get("/ui/pending").csrf,
                                                                  "reason": "x"})
    assert r.status in (403, 404), r.status
    assert web.ok(a, "GET", f"/v1/requests/{rid}")["state"] == "pending"


def test_web_actions_are_audited_with_the_identity_and_linked_from_webhooks(tmp_path, idp):
    hook, slack = HookReceiver(), HookReceiver()
    b = web_broker(tmp_path, idp, webhooks=[{"url": hook.url, "format": "json"},
                                            {"url": slack.url, "format": "slack", "events": ["request.create"]}])
    try:
        alice = b.person("alice", 1001, ["netops", "dba"], host="web-1")
        rid = b.ok(alice, "POST", "/v1/requests", {"rule": "db-restart", "reason": "lag", "ticket": "OPS-7"},
                   status=201)["id"]
        bob = browser(b, "bob")
        page = bob.get(f"/ui/requests/{rid}")
        assert 'href="https://tracker.example.com/browse/OPS-7"' in page.body
        assert bob.post(f"/ui/requests/{rid}/approve", {"csrf": page.csrf}).status == 200
        (approve,) = audit_rows(b, "request.approve")
        assert approve["identity"] | {"groups": None} == {"source": "oidc", "issuer": idp.issuer,
                                                          "subject": "sub-bob", "user": "bob", "groups": None}
        (create,) = audit_rows(b, "request.create")
        assert create["identity"]["source"] == "attestation" and create["identity"]["host"] == "web-1"
        b.syslog_sent()
        events = {r.action: r for r in b.audit.records}
        assert events["request.approve"].get("jitrun.identity.source") == "oidc"
        assert events["request.approve"].get("jitrun.identity.issuer") == idp.issuer
        assert events["request.approve"].get("jitrun.identity.subject") == "sub-bob"
        assert events["request.approve"].get("host.name") is None and events["request.approve"].get("user.id") is None
        assert events["request.create"].get("jitrun.identity.source") == "attestation"
        link = f"{b.url}/ui/requests/{rid}"
        wait_for(lambda: {"request.create", "request.approve", "grant.issue"} <= {
            r["body"]["type"] for r in hook.by_delivery().values()}, 30, "webhooks")
        for r in hook.by_delivery().values():
            if r["body"]["type"].startswith(("request.", "grant.")):
                assert r["body"]["url"] == link, r["body"]
            else:
                assert "url" not in r["body"], r["body"]
        assert "session.start" not in {r["body"]["type"] for r in hook.by_delivery().values()}
        wait_for(lambda: slack.received, 30, "the slack webhook")
        assert slack.received[0]["body"]["text"].endswith(f"(request.create) <{link}|open>")
    finally:
        b.close()
        hook.close()
        slack.close()


def test_sessions_end_at_sign_out_by_an_admin_and_when_idle(tmp_path, idp):
    b = web_broker(tmp_path, idp, session_idle="2s", session_lifetime="1h")
    try:
        bob = browser(b, "bob")
        token = bob.cookies["jitbroker_session"]
        out = bob.post("/ui/logout", {"csrf": bob.get("/ui/pending").csrf})
        assert out.status == 200 and 'id="signed-out"' in out.body and "jitbroker_session" not in bob.cookies
        replay = WebClient(b.url, cookies={"jitbroker_session": token}).get("/ui/pending", follow=False)
        assert replay.status == 303 and replay.headers["location"].startswith("/ui/login")
        # An admin ends carol's session from the broker's machine.
        carol = browser(b, "carol")
        ended = b.cli("session", "end", "--user", "carol").stdout
        assert "ended web session" in ended, ended
        assert carol.get("/ui/pending", follow=False).status == 303
        # Idle: no page for longer than session_idle.
        dave = browser(b, "admin")
        time.sleep(3)
        assert dave.get("/ui/pending", follow=False).status == 303
        sessions = json.loads(b.cli("session", "list", "--all", "--json").stdout)["sessions"]
        reasons = sorted((s["user"], s["end_reason"]) for s in sessions)
        assert reasons == [("admin", "idle"), ("bob", "logout"), ("carol", "ended by an admin")], reasons
        ends = audit_rows(b, "session.end")
        assert [(e["session"]["user"], e["_actor"]) for e in ends][:2] == [("bob", "bob"), ("carol", ends[1]["_actor"])]
        assert ends[1]["_actor"].startswith("local:")
    finally:
        b.close()


def test_over_tls_cookies_are_secure_and_host_only(tmp_path, idp):
    d = tmp_path / "tls"
    d.mkdir()
    ca, crt, key = tls_files(d, ["127.0.0.1"])
    b = web_broker(tmp_path, idp, tls=(ca, crt, key))
    try:
        c = WebClient(b.url, cafile=str(ca))
        login = c.get("/ui/login", follow=False)
        (cookie,) = login.set_cookies
        assert cookie.startswith("__Host-jitbroker_signin=") and "; Secure" in cookie and "Path=/;" in cookie
        assert login.headers["strict-transport-security"].startswith("max-age=")
        form = c.get(login.headers["location"])
        back = c.request("POST", form.url, form={"sub": "sub-bob"}, follow=False)
        done = c.get(back.headers["location"], follow=False)
        assert done.status == 303, done
        session = [s for s in done.set_cookies if s.startswith("__Host-jitbroker_session=")]
        assert len(session) == 1, done.set_cookies
        attrs = session[0].split("; ")[1:]
        # Host-only, Secure, for the whole site; no Max-Age: it lives as long as the browser
        # (the store ends it when idle or at its lifetime).
        assert sorted(attrs) == ["HttpOnly", "Path=/", "SameSite=Lax", "Secure"], session
        page = c.get(done.headers["location"])
        assert 'id="signed-in-as">bob<' in page.body
    finally:
        b.close()



# ---- several replicas on one PostgreSQL store (docs/broker.md, "Several replicas")

@pytest.fixture()
def web_replicas(tmp_path, idp, store_backend):
    """Two replicas with [web] on one store: the same signing key, the same public_url (the
    first's address, standing for the load balancer browsers reach them through)."""
    r1 = web_broker(tmp_path, idp, name="r1", replica="r1")
    r2 = web_broker(tmp_path, idp, name="r2", store=r1.store, replica="r2", public_url=r1.url,
                    signing_key=r1.key)
    yield r1, r2
    r2.close()
    r1.close()


def provider_callback(c: WebClient, sub: str) -> str:
    """Start a sign-in at c.base, sign in at the provider as `sub`; the callback URL it sends
    the browser back to (not followed)."""
    login = c.get("/ui/login", follow=False)
    assert login.status == 303, login
    form = c.get(login.headers["location"])
    back = c.request("POST", form.url, form={"sub": sub}, follow=False)
    assert back.status in (302, 303) and "/ui/callback?" in back.headers["location"], back
    return back.headers["location"]


@pytest.mark.backends("postgres")
def test_a_sign_in_started_on_one_replica_finishes_on_another_and_the_session_is_everywhere(web_replicas):
    r1, r2 = web_replicas
    public = r1.url
    c = WebClient(r1.url)
    callback = provider_callback(c, "sub-bob")
    assert callback.startswith(public + "/ui/callback?")
    # The load balancer sends the browser back to the other replica: the sign-in's state,
    # nonce and PKCE verifier are in the store, so r2 finishes what r1 started.
    done = c.get(callback.replace(r1.url, r2.url), follow=False)
    assert done.status == 303 and "jitbroker_session" in c.cookies, (done.status, done.body[:1000])
    for b in (r1, r2):
        c.base = b.url
        page = c.get("/ui/pending")
        assert page.status == 200 and 'id="signed-in-as">bob<' in page.body, (b.url, page.body[:1000])
    (start,) = audit_rows(r1, "session.start")
    assert start["identity"]["subject"] == "sub-bob"
    # bob approves on r2; the API on r1 shows the approval, made through the provider.
    alice = r1.person("alice", 1001, ["netops", "dba"], host="web-1")
    rid = r1.ok(alice, "POST", "/v1/requests", {"rule": "db-restart", "reason": "lag"}, status=201)["id"]
    c.base = r2.url
    form = c.get(f"/ui/requests/{rid}/approve")
    assert c.post(f"/ui/requests/{rid}/approve", {"csrf": form.csrf}, headers={"Origin": public}).status == 200
    req = r1.ok(alice, "GET", f"/v1/requests/{rid}")
    assert req["state"] == "approved" and [(a["user"], a["source"]) for a in req["approvals"]] == [("bob", "oidc")]
    # Signed out on r2: r1 no longer knows the cookie either.
    token = c.cookies["jitbroker_session"]
    out = c.post("/ui/logout", {"csrf": c.get("/ui/pending").csrf}, headers={"Origin": public})
    assert out.status == 200 and 'id="signed-out"' in out.body
    replay = WebClient(r1.url, cookies={"jitbroker_session": token}).get("/ui/pending", follow=False)
    assert replay.status == 303 and replay.headers["location"].startswith("/ui/login")
    listed = json.loads(r1.cli("session", "list", "--all", "--json").stdout)["sessions"]
    assert [(s["user"], s["end_reason"]) for s in listed] == [("bob", "logout")]


@pytest.mark.backends("postgres")
def test_a_callback_reaching_both_replicas_at_once_signs_in_once(web_replicas):
    r1, r2 = web_replicas
    for round_ in range(5):
        c = WebClient(r1.url)
        callback = provider_callback(c, "sub-carol")
        barrier = threading.Barrier(2)
        answers = [None, None]

        def hit(i, b):
            other = WebClient(b.url, cookies=dict(c.cookies))
            barrier.wait()
            answers[i] = other.get(callback.replace(r1.url, b.url), follow=False)

        threads = [threading.Thread(target=hit, args=(i, b)) for i, b in enumerate((r1, r2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        statuses = sorted(a.status for a in answers)
        assert statuses == [303, 403], [(a.status, a.body[:300]) for a in answers]
        refused = next(a for a in answers if a.status == 403)
        # Refused by the store (the state was taken once), before the provider was asked.
        assert "unknown or took longer" in refused.body, refused.body[:1000]
        assert len(audit_rows(r1, "session.start")) == round_ + 1


@pytest.mark.backends("postgres")
def test_jitbroker_migrate_keeps_web_sessions_and_how_approvers_signed_in(tmp_path, idp, pg_cluster):
    """A SQLite broker with web pages moved to PostgreSQL: bob's session carries on, his web
    approval keeps its source."""
    from test_migrate import migrate

    old = web_broker(tmp_path, idp, name="old", store=SqliteStore(tmp_path / "old.db"))
    target = PostgresStore(pg_cluster)
    new = None
    try:
        alice = old.person("alice", 1001, ["netops", "dba"], host="web-1")
        rid = old.ok(alice, "POST", "/v1/requests", {"rule": "db-restart", "reason": "lag"}, status=201)["id"]
        bob = browser(old, "bob")
        form = bob.get(f"/ui/requests/{rid}/approve")
        assert bob.post(f"/ui/requests/{rid}/approve", {"csrf": form.csrf, "comment": "ok"}).status == 200
        old.stop()
        r = migrate(old, f"sqlite:{old.store.path}", target.url, pg_cluster.password)
        assert r.returncode == 0, r.stderr + r.stdout
        assert "rows of web_sessions" in r.stdout and "verified: every table equal row by row" in r.stdout, r.stdout
        new = web_broker(tmp_path, idp, name="new", store=target, signing_key=old.key)
        new.hosts = old.hosts
        bob.base = new.url
        page = bob.get("/ui/pending")
        assert page.status == 200 and 'id="signed-in-as">bob<' in page.body, page.body[:1000]
        req = new.ok(alice, "GET", f"/v1/requests/{rid}")
        assert [(a["user"], a["source"], a["comment"]) for a in req["approvals"]] == [("bob", "oidc", "ok")]
        assert "intact" in new.cli("audit", "verify").stdout
    finally:
        if new:
            new.close()
        old.close()
        pg_cluster.drop_database(target.name)

