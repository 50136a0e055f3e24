"""Self-tests of the harness parts that need neither root nor jitrun (parsers, helpers)."""

import json
import socket
import tempfile
from pathlib import Path

import jitlab


def test_parse_cee():
    raw = b'<85>Nov  5 17:15:01 jitrun[4242]: @cee:{"event":{"action":"elevate.start"},"user":{"name":"a","target":{"name":"b"}}}'
    r = jitlab.parse_datagram(raw)
    assert r.framing == "cee" and r.facility == 10 and r.severity == 5
    assert r.procid == "4242" and r.app == "jitrun"
    assert r.action == "elevate.start" and r.get("user.target.name") == "b" and r.get("user.x") is None


def test_parse_rfc5424_with_escapes():
    raw = (b'<84>1 2026-11-25T17:15:01.123456Z web-1 jitrun 42 elevate.deny '
           b'[jitrun@32473 event.action="elevate.deny" process.args="[\\"a\\",\\"q\\\\\\"\\]\\"\\]" x="\\\\"]'
           b'[other@1 y="z"] alice was refused')
    r = jitlab.parse_datagram(raw)
    assert r.framing == "rfc5424", r.error
    assert (r.pri, r.hostname, r.app, r.procid, r.msgid) == (84, "web-1", "jitrun", "42", "elevate.deny")
    assert r.action == "elevate.deny"
    assert json.loads(r.params["process.args"]) == ["a", 'q"]']
    assert r.params["x"] == "\\"
    assert r.sd["other@1"] == {"y": "z"}
    assert r.msg == "alice was refused"


def test_parse_rfc5424_nil_sd_and_garbage():
    r = jitlab.parse_datagram(b"<85>1 2026-11-25T17:15:01Z h jitrun 1 elevate.end - done")
    assert r.framing == "rfc5424" and r.sd == {} and r.msg == "done"
    assert jitlab.parse_datagram(b"<85>1 not-a-time h a 1 m - x").framing == "unparsed"
    assert jitlab.parse_datagram(b"hello").framing == "unparsed"
    assert jitlab.parse_datagram(b"<85>Nov  5 17:15:01 jitrun[1]: @cee:{bad json").framing == "unparsed"


def test_listener_collects_and_syncs():
    with tempfile.TemporaryDirectory() as d:
        lst = jitlab.AuditListener(Path(d) / "s").start()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                for i in range(50):  # more than the kernel's default queue of 10
                    s.sendto(b'<85>Nov  5 17:15:01 jitrun[1]: @cee:{"event":{"action":"e%d"}}' % i, str(lst.path))
            lst.sync()
            assert [r.action for r in lst.since(0)] == [f"e{i}" for i in range(50)]
        finally:
            lst.close()


def test_caps_and_tokens():
    assert jitlab.cap_mask("CAP_NET_RAW") == 0x2000 and jitlab.cap_mask("net_bind_service") == 0x400
    assert jitlab.cap_names(0x2004) == ["CAP_DAC_READ_SEARCH", "CAP_NET_RAW"]
    u = jitlab.uuid7()
    assert u[14] == "7"
    body = jitlab.b64url_encode(b'{"a":1}' + b"s" * 64)
    tok = f"v4.public.{body}." + jitlab.b64url_encode(b'{"kid":"k"}')
    claims, sig, footer = jitlab.decode_token(tok)
    assert claims == {"a": 1} and sig == b"s" * 64 and footer == b'{"kid":"k"}'
    t2 = jitlab.tamper_token(tok, lambda c: c.update(a=2))
    assert jitlab.decode_token(t2)[0] == {"a": 2} and jitlab.decode_token(t2)[1] == sig
