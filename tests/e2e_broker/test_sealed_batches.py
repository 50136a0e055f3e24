"""Sealed break-glass grants end to end (docs/broker.md, "Sealed break-glass grants"; the
procedure in docs/admin-guide.md): `jitbroker break-glass seal` prints a batch as text and as
QR codes (decoded here with zbarimg) and keeps no token; a grant works once on the host,
with no broker involved (a `break_glass` alert); the host reports the use at its next
`jitctl revocations sync`, and `break-glass list` shows which grant was used where;
`break-glass revoke` puts the whole batch on the revocation list."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import stat
import subprocess

from brokerlab import ROOT
from jitlab import decode_token

TRUE = ["/usr/bin/true", "ok"]


def sealed_rule(bw) -> str:
    return (f'[[rule]]\nname = "bg-sealed"\ngroups = ["{bw.devs}"]\ncommands = ["/usr/bin/true **"]\n'
            'max_duration = "30m"\nmin_approvals = 1\nsealed_validity = "30d"\n')


def seal(bw, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    return bw.broker("--config", str(bw.config), "break-glass", "seal", *extra, check=check)


def tokens_in(text: str) -> list[str]:
    return re.findall(r"^(v4\.public\.\S+)$", text, re.M)


def qr_codes_in(text: str) -> list[list[str]]:
    """The QR codes of a printout: runs of lines made of block characters."""
    codes, cur = [], []
    for line in text.splitlines():
        if line and set(line) <= set(" █▀▄"):
            cur.append(line)
        elif cur:
            codes.append(cur)
            cur = []
    if cur:
        codes.append(cur)
    return [c for c in codes if len(c) > 10]


def decode_qr(lines: list[str], path) -> str:
    """Draw the half-block QR code as a PBM image and read it with zbarimg."""
    rows = []
    for line in lines:
        top = [c in "█▀" for c in line]
        bottom = [c in "█▄" for c in line]
        rows += [top, bottom]
    scale = 4
    pixels = [[int(px) for px in row for _ in range(scale)] for row in rows for _ in range(scale)]
    path.write_text(f"P1\n{len(pixels[0])} {len(pixels)}\n" + "\n".join(" ".join(map(str, r)) for r in pixels) + "\n")
    assert shutil.which("zbarimg"), "zbarimg not found: make deps installs zbar-tools"
    p = subprocess.run(["zbarimg", "--raw", "-q", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p
    return p.stdout.strip()


def listed(bw) -> dict[str, dict]:
    out = bw.broker("--config", str(bw.config), "break-glass", "list", "--json").stdout
    return {g["id"]: g for g in json.loads(out)["sealed"]}


def test_a_sealed_batch_is_printed_used_once_reported_and_revoked(bw, tmp_path):
    lab, a = bw.lab, bw.alice
    lab.set_policy(bw.policy, dropins={"50-sealed.toml": sealed_rule(bw)})
    out_dir = bw.dir / "sealed-out"
    p = seal(bw, "--rule", "bg-sealed", "--user", a.name, "--hosts", lab.host, "--count", "2",
             "--validity", "30d", "--reason", "vault batch Q4", "--ticket", "SEC-1", "--out", str(out_dir))
    tokens = tokens_in(p.stdout)
    assert len(tokens) == 2, p.stdout
    batch = re.search(r"batch (\S+)\)", p.stdout).group(1)
    assert f"sealed 2 grant(s) in batch {batch}" in p.stderr, p.stderr
    ids = []
    for t in tokens:
        c = decode_token(t)[0]
        assert (c["sub"], c["rule"], c["hosts"], c["sealed"], c["break_glass"], c["max_uses"]) == \
            (a.name, "bg-sealed", [lab.host], True, True, 1), c
        assert c["approvers"] == [] and c["reason"] == "vault batch Q4" and c["ticket"] == "SEC-1"
        ids.append(c["jti"])
    # Each QR code is its token.
    codes = qr_codes_in(p.stdout)
    assert len(codes) == 2, p.stdout
    assert [decode_qr(c, tmp_path / f"qr{i}.pbm") for i, c in enumerate(codes)] == tokens
    # --out: one SVG and one text sheet per grant, for the owner only.
    for gid in ids:
        for ext in ("svg", "txt"):
            f = out_dir / f"{gid}.{ext}"
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        assert (out_dir / f"{gid}.svg").read_text().startswith("<?xml")
    # The broker keeps what it issued, not the tokens: not in the SQLite files (free pages
    # included), not in anything PostgreSQL holds for the broker.
    if bw.server.store.kind == "sqlite":
        store = b"".join(f.read_bytes() for f in bw.dir.glob("broker.db*"))
    else:
        store = bw.server.store.cluster.dump(bw.server.store.name).encode()
    for t in tokens:
        assert hashlib.sha256(t.encode()).hexdigest().encode() in store  # what it keeps: the hash
        # The end of the token's body is its signature: unique to it.
        assert t.split(".")[2][-40:].encode() not in store, "a sealed token is in the broker's store"
    seen = listed(bw)
    for gid, t in zip(ids, tokens):
        g = seen[gid]
        assert g["batch"] == batch and g["uses"] == [] and not g["revoked"], g
        assert g["token_sha256"] == hashlib.sha256(t.encode()).hexdigest()

    # On the host, with no broker involved: once.
    res = lab.run_as_user(a, TRUE, grant="-", stdin=tokens[0] + "\n")
    assert res.returncode == 0, str(res)
    assert res.event("break_glass").get("jitrun.grant.id") == ids[0], str(res)
    res = lab.run_as_user(a, TRUE, grant="-", stdin=tokens[0] + "\n")
    assert res.returncode == 1 and res.event("elevate.deny").get("jitrun.deny_code") == "grant_used_up", str(res)

    # The next sync reports the use, once.
    out = bw.ok(ROOT, "revocations", "sync")
    assert f"reported the use of sealed break-glass grant(s) {ids[0]} on this host to {bw.url}" in out, out
    out = bw.ok(ROOT, "revocations", "sync")
    assert "reported the use" not in out, out
    seen = listed(bw)
    assert [u["host"] for u in seen[ids[0]]["uses"]] == [lab.host]
    assert seen[ids[1]]["uses"] == []
    text = bw.broker("--config", str(bw.config), "break-glass", "list").stdout
    assert f"{ids[0]}  valid, used on {lab.host} at" in text and f"{ids[1]}  valid, unused" in text, text

    # Revoke the batch: both on the list hosts fetch; the unused one is refused.
    out = bw.broker("--config", str(bw.config), "break-glass", "revoke", batch, "--reason", "batch replaced").stdout
    assert "revoked 2 sealed grant(s)" in out, out
    out = bw.ok(ROOT, "revocations", "sync")
    on_list = {r["jti"] for r in decode_token((lab.state / "revocations").read_text())[0]["revoked"]}
    assert set(ids) <= on_list, out
    res = lab.run_as_user(a, TRUE, grant="-", stdin=tokens[1] + "\n")
    assert res.returncode == 1 and res.event("elevate.deny").get("jitrun.deny_code") == "revoked", str(res)
    assert all(g["revoked"] for g in listed(bw).values() if g["batch"] == batch)
    out = bw.broker("--config", str(bw.config), "break-glass", "revoke", batch, "--reason", "again").stdout
    assert "nothing to revoke" in out, out

    # The audit trail holds it all, and its chain is intact.
    bw.broker("--config", str(bw.config), "audit", "verify")
    with bw.server.db() as c:
        kinds = [r[0] for r in c.execute("SELECT type FROM audit WHERE subject IN (?, ?, ?)", (batch, *ids))]
    assert kinds.count("grant.issue") == 2 and "grant.seal" in kinds and "grant.sealed_use" in kinds, kinds
    assert kinds.count("grant.revoke") == 2, kinds


def test_sealing_follows_the_workflow(bw):
    # A workflow without break-glass: refused.
    p = seal(bw, "--rule", "db-restart", "--user", bw.alice.name, "--hosts", bw.lab.host, "--reason", "x",
             check=False)
    assert p.returncode == 1 and "does not allow break-glass" in p.stderr, p
    # Without workflow hosts, hosts are named one by one.
    p = seal(bw, "--rule", "bg-fix", "--user", bw.alice.name, "--hosts", "web-*", "--reason", "x", check=False)
    assert p.returncode == 1 and "no globs" in p.stderr, p
    p = seal(bw, "--rule", "bg-fix", "--user", bw.alice.name, "--hosts", bw.lab.host, "--count", "0",
             "--reason", "x", check=False)
    assert p.returncode == 1 and "--count" in p.stderr, p


def test_only_root_on_a_host_reports_uses(bw):
    body = json.dumps({"uses": [{"id": "01J0000000000000000000000A", "at": "2026-01-01T00:00:00Z"}]}).encode()
    token = bw.attest(bw.alice, "POST", "/v1/sealed/used", body)
    status, answer = bw.http("POST", "/v1/sealed/used", body, {"Authorization": f"JitAttest {token}"})
    assert status == 403 and answer["error"]["code"] == "not_root", answer
    token = bw.attest(ROOT, "POST", "/v1/sealed/used", body)
    status, answer = bw.http("POST", "/v1/sealed/used", body, {"Authorization": f"JitAttest {token}"})
    assert status == 200 and answer == {"recorded": []}, answer
