"""Approvers in a browser: sign in through the provider, approve and deny, the grant reaching
alice's host and jitrun running with it; what a person may not do (their own request, a forged
form); text people wrote shown as text; sessions ending. Screenshots of the main pages go to
target/web-screenshots/."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from webclient import WebClient  # noqa: E402

STATUS_TRUE = ["/usr/bin/true", "ok"]


def api_decidable(ww, user) -> list[str]:
    """GET /v1/requests?decidable=true, attested as ``user`` from this host (what jitctl does)."""
    token = ww.attest(user, "GET", "/v1/requests")
    status, body = ww.http("GET", "/v1/requests?decidable=true", headers={"Authorization": f"JitAttest {token}"})
    assert status == 200, body
    return [r["id"] for r in body["requests"]]


def page_requests(browser) -> list[str]:
    return [a.get_attribute("data-request") for a in browser.all("article[data-request]")]


def store_rows(ww, sql: str, *args):
    """Rows of the broker's store, SQLite or PostgreSQL (`?` placeholders on both)."""
    with ww.server.db() as c:
        return c.execute(sql, args).fetchall()


def test_bob_and_carol_approve_in_the_browser_and_alice_runs_her_command(ww, idp, browser):
    a, lab = ww.alice, ww.lab
    req = ww.request(a, "db-restart", "--ticket", "OPS-4711", "--ttl", "20m")
    rid = req["id"]
    browser.sign_in(ww.url, idp.issuer, f"sub-{ww.bob.name}")
    assert browser.find("#signed-in-as").text == ww.bob.name
    # Waiting for me: the request, with what it would grant; the same list as the API's for bob.
    card = browser.find(f'article[data-request="{rid}"]')
    assert card.find_element("css selector", ".requester").text.startswith(a.name)
    assert card.find_element("css selector", ".rule").text == "db-restart"
    assert card.find_element("css selector", ".count").text == "0 of 2"
    assert card.find_element("css selector", ".ticket a").get_attribute("href") == \
        "https://tracker.example.com/browse/OPS-4711"
    assert page_requests(browser) == api_decidable(ww, ww.bob)
    browser.screenshot("pending")
    card.find_element("css selector", "a.approve").click()
    confirm = browser.wait("p.confirm").text
    assert f"{a.name} may use rule db-restart" in confirm and "20m" in confirm, confirm
    browser.screenshot("confirm-approve")
    browser.find("#comment").send_keys("looks right")
    browser.click("#confirm")
    assert browser.wait("#done").text == "You approved this request."
    assert browser.find("#state").text == "pending" and "#approve" not in browser.driver.page_source
    assert rid not in page_requests_after(browser, ww)
    browser.sign_out()
    # carol's approval is the second: the grant is issued.
    browser.sign_in(ww.url, idp.issuer, f"sub-{ww.carol.name}", path=f"/ui/requests/{rid}")
    browser.click("#approve")
    browser.wait("#confirm").click()
    assert browser.wait("#state").text == "approved"
    gid = browser.find("#grant-id").text
    browser.screenshot("request-approved")
    # alice's jitctl sync fetches it, and the setuid jitrun runs her command with it.
    out = ww.ok(a, "sync")
    assert gid in out, out
    res = lab.run_as_user(a, STATUS_TRUE)
    assert res.returncode == 0, str(res)
    start = res.event("elevate.start")
    assert start.get("jitrun.grant.id") == gid
    assert sorted(start.get("jitrun.grant.approvers")) == sorted([ww.bob.name, ww.carol.name])
    shown = json.loads(ww.ok(a, "show", rid, "--json"))
    assert [(x["user"], x["source"], x["comment"]) for x in shown["approvals"]] == [
        (ww.bob.name, "oidc", "looks right"), (ww.carol.name, "oidc", None)]
    # The audit trail says how they were identified.
    rows = store_rows(ww, "SELECT actor, data FROM audit WHERE type = 'request.approve' AND subject = ?", rid)
    for actor, data in rows:
        ident = json.loads(data)["identity"]
        assert (ident["source"], ident["issuer"], ident["subject"]) == ("oidc", idp.issuer, f"sub-{actor}")
    # The grants page shows it, with revoke.
    browser.go(ww.url + "/ui/grants")
    assert browser.find(f'tr[data-grant="{gid}"]').is_displayed()
    browser.screenshot("grants")


def page_requests_after(browser, ww) -> list[str]:
    browser.go(ww.url + "/ui/pending")
    browser.wait("main h1")
    return page_requests(browser)


def test_carol_denies_and_alice_is_told_why(ww, idp, browser):
    a = ww.alice
    rid = ww.request(a, "db-restart")["id"]
    browser.sign_in(ww.url, idp.issuer, f"sub-{ww.carol.name}", path=f"/ui/requests/{rid}")
    browser.click("#deny")
    browser.wait("#reason").send_keys("not during the freeze")
    browser.screenshot("confirm-deny")
    browser.click("#confirm")
    assert browser.wait("#state").text == "denied"
    assert browser.find(".deny-reason").text == "not during the freeze"
    out = ww.ok(a, "show", rid)
    assert f"denied by {ww.carol.name}: not during the freeze" in out, out


def test_erin_cannot_approve_her_own_request_nor_forge_it(ww, idp, browser):
    e = ww.erin  # requests (devs) and approves (dba)
    rid = ww.request(e, "db-restart")["id"]
    browser.sign_in(ww.url, idp.issuer, f"sub-{e.name}")
    assert rid not in page_requests(browser)
    browser.go(f"{ww.url}/ui/requests/{rid}")
    browser.wait("#state")
    assert not browser.all("#approve") and not browser.all("#deny")
    assert "cannot approve their own request" in browser.find("#why-not").text
    # A forged form, posted from the page itself with her valid CSRF token: refused by the same
    # rule as the API (self_approval), and nothing is recorded.
    browser.driver.execute_script(
        "const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];"
        "const i = document.createElement('input'); i.name = 'csrf'; i.value = arguments[1]; f.appendChild(i);"
        "document.body.appendChild(f); f.submit();",
        f"/ui/requests/{rid}/approve", browser.find('input[name="csrf"]').get_attribute("value"))
    err = browser.wait("#error")
    assert err.get_attribute("data-code") == "self_approval", browser.driver.page_source
    assert json.loads(ww.ok(e, "show", rid, "--json"))["approvals"] == []
    p = ww.jitctl(e, "approve", rid)
    assert p.returncode == 1 and "own request" in p.stderr, p


def test_what_people_wrote_is_shown_as_text(ww, idp, browser):
    reason = 'disk <script>document.title="pwned"</script> "><img src=x onerror="document.title=\'pwned2\'">'
    ticket = '"><img src=x onerror=alert(1)>'
    out = ww.ok(ww.alice, "request", "db-restart", "--reason", reason, "--ticket", ticket, "--json")
    rid = json.loads(out[: out.rindex("}") + 1])["id"]
    browser.sign_in(ww.url, idp.issuer, f"sub-{ww.bob.name}")
    title = browser.driver.title
    card = browser.find(f'article[data-request="{rid}"]')
    shown = card.find_element("css selector", ".reason")
    assert shown.text == reason
    assert not card.find_elements("css selector", ".reason *, .ticket img, script, img")
    assert card.find_element("css selector", ".ticket a").text == ticket
    assert "%22%3E%3Cimg" in card.find_element("css selector", ".ticket a").get_attribute("href")
    source = browser.driver.page_source
    assert "&lt;script&gt;document.title" in source and "<script>document.title" not in source
    # Nothing ran: no alert, the title unchanged.
    assert browser.driver.title == title and "pwned" not in title
    from selenium.common.exceptions import NoAlertPresentException
    try:
        browser.driver.switch_to.alert.text
        raise AssertionError("an alert is open")
    except NoAlertPresentException:
        pass
    browser.screenshot("escaped-text")


def test_sign_out_ends_the_session_in_the_store(ww, idp, browser):
    browser.sign_in(ww.url, idp.issuer, f"sub-{ww.dave.name}")
    token = browser.driver.get_cookie("jitbroker_session")["value"]
    cookie = browser.driver.get_cookie("jitbroker_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/ui/"
    # dave is an admin: the Audit page, with the chain verified.
    browser.click('a[href="/ui/audit"]')
    assert browser.wait("#chain").text.startswith("Hash chain intact:")
    browser.screenshot("audit")
    browser.sign_out()
    assert browser.driver.get_cookie("jitbroker_session") is None
    (ended, why), = store_rows(ww, 'SELECT ended, end_reason FROM web_sessions WHERE "user" = ? ORDER BY created DESC LIMIT 1',
                               ww.dave.name)
    assert ended is not None and why == "logout"
    # The old cookie opens nothing.
    replay = WebClient(ww.url, cookies={"jitbroker_session": token}).get("/ui/pending", follow=False)
    assert replay.status == 303 and replay.headers["location"].startswith("/ui/login")


def test_an_expired_session_is_sent_to_sign_in_again(idp, browser, tmp_path):
    """A broker with a 3-second idle limit (tests/harness/brokerlab.py, SQLite; no root needed)."""
    from brokerlab import NET, Broker
    from browser import web_section

    secret = tmp_path / "secret"
    secret.write_text("s\n")
    secret.chmod(0o600)
    idp.set_user("sub-ivy", {"preferred_username": "ivy", "groups": ["idp-leads"]})
    b = Broker(tmp_path / "b", workflows=[NET],
               extra=web_section(idp, secret, {"idp-leads": ["netleads"]}, public_url="http://127.0.0.1:PORT",
                                 session_idle="3s"))
    b.config.write_text(b.config.read_text().replace(":PORT", f":{b.port}"))
    b.start()
    try:
        url = f"http://127.0.0.1:{b.port}"
        browser.sign_in(url, idp.issuer, "sub-ivy")
        time.sleep(4)  # longer than session_idle without a page: the wait is the point, not a timing
        browser.go(url + "/ui/grants")
        browser.wait('input[name="sub"]')
        assert browser.url.startswith(idp.issuer + "/oauth2/authorize?"), browser.url
        browser.find('input[name="sub"]').send_keys("sub-ivy")
        browser.find('form button[type="submit"]').click()
        browser.wait("#signed-in-as")
        assert browser.url == url + "/ui/grants"
        with b.db() as c:
            reasons = [r for (r,) in c.execute("SELECT end_reason FROM web_sessions ORDER BY created")]
        assert reasons == ["idle", None], reasons
    finally:
        b.close()
