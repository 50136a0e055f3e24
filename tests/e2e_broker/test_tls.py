"""jitctl over TLS: `ca = ...` in client.toml names the CA that signed the broker's
certificate; without it the broker's private CA is not trusted and nothing is sent."""

from __future__ import annotations

from brokerlab import free_port, serve, stop_process
from jitlab import toml_value
from testca import tls_files


def test_jitctl_trusts_the_configured_ca_only(bw):
    lab = bw.lab
    d = bw.dir / "tls"
    d.mkdir(mode=0o700, exist_ok=True)
    ca, crt, key = tls_files(d, ["127.0.0.1"])
    port = free_port()
    # A second listener: the same broker settings, signing key and store, with TLS on another port.
    text = bw.config.read_text().replace(bw.url.split("//")[1], f"127.0.0.1:{port}")
    config = d / "broker.toml"
    config.write_text(text + f"\n[tls]\ncert = {toml_value(str(crt))}\nkey = {toml_value(str(key))}\n")
    client = lab.conf / "client.toml"
    original = client.read_text()
    url = f"https://127.0.0.1:{port}"
    proc = serve(config, url, d / "serve.log", ca=ca)
    try:
        # Without `ca`: the private CA is not trusted.
        p = bw.jitctl(bw.alice, "--broker", url, "grants")
        assert p.returncode == 1 and "cannot reach the broker" in p.stderr, p
        assert "certificate" in p.stderr.lower() or "issuer" in p.stderr.lower(), p.stderr
        # With `ca`: it works, attestation and all.
        lab._write_conf(lab.conf / "broker-ca.pem", ca.read_text())
        lab._write_conf(client, f"broker = {toml_value(url)}\nca = \"/etc/jitrun/broker-ca.pem\"\n"
                                f"jitrun = {toml_value(str(lab.jitrun))}\n")
        out = bw.ok(bw.alice, "requests", "--json")
        assert '"requests"' in out, out
        # Plain http to the TLS port is refused by the client's own checks on the answer.
        p = bw.jitctl(bw.alice, "--broker", f"http://127.0.0.1:{port}", "grants")
        assert p.returncode == 1, p
    finally:
        lab._write_conf(client, original)
        (lab.conf / "broker-ca.pem").unlink(missing_ok=True)
        stop_process(proc)
