"""A signing-key roll-over as docs/broker.md describes it, with the real jitrun on the host:
the new public key reaches keys.d first, then the broker signs with the new key; grants signed
before keep working beside the new ones until the old key leaves keys.d."""

from __future__ import annotations

import json
import re

from brokerlab import ROOT
from jitlab import decode_token

STATUS_TRUE = ["/usr/bin/true", "ok"]


def grant_of(bw, user) -> tuple[str, str]:
    out = bw.ok(user, "request", "oncall-debug", "--reason", "key roll-over")
    gid = re.search(r"grant (\S+) issued", out).group(1)
    return gid, (bw.lab.grant_dir(user) / gid).read_text().strip()


def signing_key_line(bw, path) -> None:
    text = bw.config.read_text()
    bw.config.write_text(re.sub(r'(?m)^signing_key = .*$', f'signing_key = "{path}"', text))


def test_a_key_roll_over_keeps_old_grants_working_until_the_old_key_goes(bw):
    lab, d, server = bw.lab, bw.dave, bw.server
    old_key = server.key
    old_gid, old_token = grant_of(bw, d)
    kept_gid, _ = grant_of(bw, d)
    new_key = bw.dir / "signing-2.key"
    try:
        # 1. A new key; its public half to every host first (here: this host's keys.d).
        out = bw.broker("--config", str(bw.config), "keygen", str(new_key)).stdout.strip()
        assert out.startswith("k4.public.") and new_key.with_suffix(".pub").read_text().strip() == out
        assert oct(new_key.stat().st_mode & 0o777) == "0o600"
        lab.trust_key(new_key.with_suffix(".pub"), "broker-next")
        # 2. The broker (every replica, one by one) signs with the new key from now on.
        server.stop()
        signing_key_line(bw, new_key)
        server.start()
        new_gid, new_token = grant_of(bw, d)
        kid = lambda t: json.loads(decode_token(t)[2])["kid"]  # noqa: E731
        assert kid(new_token) != kid(old_token)
        # The revocation list hosts fetch is signed with the new key at once, not at its next
        # refresh (nothing was revoked: the same seq, a newer iat).
        bw.ok(ROOT, "revocations", "sync")
        assert kid((lab.state / "revocations").read_text().strip()) == kid(new_token)
        # Both run: the host trusts both keys during the roll-over.
        for gid in (old_gid, kept_gid, new_gid):
            res = lab.run_as_user(d, STATUS_TRUE, grant=lab.grant_dir(d) / gid)
            assert res.returncode == 0, str(res)
        # Revocation lists signed with the new key are taken, and reach old grants too.
        bw.ok(d, "revoke", old_gid, "--reason", "rolled over")
        assert old_gid in bw.ok(ROOT, "revocations", "sync")
        res = lab.run_as_user(d, STATUS_TRUE, grant=lab.grant_dir(d) / old_gid)
        assert res.returncode == 1 and res.event("elevate.deny").get("jitrun.deny_code") == "revoked", str(res)
        # 3. Once the old key's grants have expired, it leaves keys.d: what it signed is refused,
        # the new key's grants run.
        (lab.conf / "keys.d" / "broker.paserk").unlink()
        lab.clear_revocations()
        assert bw.ok(ROOT, "revocations", "sync")
        res = lab.run_as_user(d, STATUS_TRUE, grant=lab.grant_dir(d) / kept_gid)
        assert res.returncode == 1 and res.event("elevate.deny").get("jitrun.deny_code") == "grant_unknown_key", str(res)
        res = lab.run_as_user(d, STATUS_TRUE, grant=lab.grant_dir(d) / new_gid)
        assert res.returncode == 0, str(res)
        old_again, _ = grant_of(bw, d)  # still the new key
        res = lab.run_as_user(d, STATUS_TRUE, grant=lab.grant_dir(d) / old_again)
        assert res.returncode == 0, str(res)
    finally:
        # Back to the world's key for the other tests (a roll-over back, the same way).
        lab.trust_key(bw.broker_public, "broker")
        server.stop()
        signing_key_line(bw, old_key)
        server.start()
        (lab.conf / "keys.d" / "broker-next.paserk").unlink(missing_ok=True)
