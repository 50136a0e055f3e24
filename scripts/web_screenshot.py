#!/usr/bin/env python3
"""Make docs/img/pending-requests.png, the README's picture of the web pages: a real jitbroker
(tests/harness/brokerlab.py, its store in SQLite) and the tests' OpenID Connect provider on loopback, a few requests
made through the API, bob signed in through the provider in Debian's headless Chromium.

    python3 scripts/web_screenshot.py [OUT.png]     # after `cargo build -p jit-broker`
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for d in ("tests/harness", "tests/e2e_web"):
    sys.path.insert(0, str(REPO / d))

import oidc_provider  # noqa: E402
from brokerlab import Broker  # noqa: E402
from browser import Browser  # noqa: E402

NET = {"rules": ["net-*"], "requesters": ["netops"], "approvers": ["netleads"], "min_approvals": 2,
       "max_ttl": "1h", "hosts": ["web-*"]}
DB = {"rules": ["db-*"], "requesters": ["dba"], "approvers": ["netleads"], "min_approvals": 1, "max_ttl": "30m",
      "break_glass": True}


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "docs" / "img" / "pending-requests.png")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        idp = oidc_provider.start(tmp / "idp.log")
        secret = tmp / "secret"
        secret.write_text("s\n")
        secret.chmod(0o600)
        extra = (f'[web]\npublic_url = "http://127.0.0.1:PORT"\nissuer = "{idp.issuer}"\nclient_id = "jitbroker"\n'
                 f'client_secret_file = "{secret}"\nticket_url = "https://tracker.example.com/browse/{{ticket}}"\n'
                 '[web.groups]\n"leads" = ["netleads"]\n')
        b = Broker(tmp / "b", workflows=[NET, DB], broker_id="broker-1", extra=extra)
        b.config.write_text(b.config.read_text().replace(":PORT", f":{b.port}"))
        b.start()
        browser = None
        try:
            alice = b.person("alice", 1001, ["netops", "dba"], host="web-1")
            dave = b.person("dave", 1004, ["netops"], host="web-3")
            carol = b.person("carol", 1003, ["netleads"], host="adm-1")
            b.ok(alice, "POST", "/v1/requests", {"rule": "db-fix", "reason": "primary down, failing over by hand",
                                                 "ticket": "INC-2211", "break_glass": True}, status=201)
            rid = b.ok(dave, "POST", "/v1/requests", {"rule": "net-debug", "reason": "packet loss on eth0 since 09:12",
                                                      "ticket": "NET-4711", "ttl": "30m", "hosts": ["web-3"],
                                                      "cmd": "/usr/sbin/tcpdump -i eth0 **"}, status=201)["id"]
            b.ok(carol, "POST", f"/v1/requests/{rid}/approve", {"comment": "go ahead"})
            b.ok(alice, "POST", "/v1/requests", {"rule": "net-restart", "reason": "restart the bond after the switch swap",
                                                 "hosts": ["web-1"]}, status=201)
            idp.set_user("sub-bob", {"preferred_username": "bob", "groups": ["leads"]})
            browser = Browser()
            browser.driver.set_window_size(1000, 1100)
            browser.sign_in(f"http://127.0.0.1:{b.port}", idp.issuer, "sub-bob")
            out.parent.mkdir(parents=True, exist_ok=True)
            browser.driver.save_screenshot(str(out))
        finally:
            if browser:
                browser.quit()
            b.close()
            idp.stop()
    print(out, out.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
