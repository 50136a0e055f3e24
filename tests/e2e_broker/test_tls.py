"""jitctl over TLS: `ca = ...` in client.toml names the CA that signed the broker's
certificate; without it the broker's private CA is not trusted and nothing is sent."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import time
import urllib.request

from brokerlab import JITBROKER, free_port
from jitlab import toml_value


def make_ca_and_leaf(d):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jitlab test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(ca_key, hashes.SHA256()))
    paths = d / "ca.pem", d / "tls.crt", d / "tls.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


def test_jitctl_trusts_the_configured_ca_only(bw):
    lab = bw.lab
    d = bw.dir / "tls"
    d.mkdir(mode=0o700, exist_ok=True)
    ca, crt, key = make_ca_and_leaf(d)
    port = free_port()
    # A second listener: the same broker settings, signing key and store, with TLS on another port.
    text = bw.config.read_text().replace(bw.url.split("//")[1], f"127.0.0.1:{port}")
    config = d / "broker.toml"
    config.write_text(text + f"\n[tls]\ncert = {toml_value(str(crt))}\nkey = {toml_value(str(key))}\n")
    log = open(d / "serve.log", "wb")
    proc = subprocess.Popen([str(JITBROKER), "--config", str(config), "serve"], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT)
    client = lab.conf / "client.toml"
    original = client.read_text()
    url = f"https://127.0.0.1:{port}"
    try:
        import ssl

        ctx = ssl.create_default_context(cafile=str(ca))
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", context=ctx, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (d / "serve.log").read_text()
            time.sleep(0.1)
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
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
