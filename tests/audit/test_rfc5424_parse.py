"""Feed jit-audit's rendered datagrams to independent parsers.

The RFC 5424 lines go to PyPI's `syslog-rfc5424-parser` (pip install syslog-rfc5424-parser),
the @cee lines to Python's json module. The datagrams come from
`cargo run -q -p jit-audit --example render`, one JSON object per line:
{"name", "framing", "max_message", "datagram"}.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest
from syslog_rfc5424_parser import SyslogMessage
from syslog_rfc5424_parser.constants import SyslogFacility, SyslogSeverity

ROOT = Path(__file__).resolve().parents[2]
SD_ID = "jitrun@32473"
# The SD-PARAM alias table of docs/audit.md (field names longer than 32 characters).
SD_ALIASES = {"process.thread.capabilities.effective": "process.thread.caps.effective"}
SEVERITY = {
    "elevate.start": SyslogSeverity.notice,
    "elevate.end": SyslogSeverity.notice,
    "elevate.deny": SyslogSeverity.warning,
    "policy.error": SyslogSeverity.err,
    "session.io": SyslogSeverity.info,
}
TRUNCATED = {"huge_arg", "many_args"}
CEE_HEADER = re.compile(r"^<(\d+)>([A-Z][a-z]{2}) ([ 1-3]\d) (\d\d:\d\d:\d\d) jitrun\[4242\]: @cee:")


@pytest.fixture(scope="module")
def samples():
    out = subprocess.run(
        ["cargo", "run", "-q", "-p", "jit-audit", "--example", "render"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert rows, "the example printed nothing"
    by = {}
    for row in rows:
        by[(row["name"], row["framing"])] = row
    return by


def rfc_unescape(value):
    """RFC 5424 §6.3.3: a backslash before '"', '\\' or ']' is dropped."""
    return re.sub(r'\\(["\\\]])', r"\1", value)


def flatten(obj, prefix=""):
    """Nested @cee JSON back to dotted field names."""
    out = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def cee_fields(datagram):
    m = CEE_HEADER.match(datagram)
    assert m, datagram[:120]
    return flatten(json.loads(datagram[m.end():]))


def sd_params(msg):
    assert list(msg.sd) == [SD_ID]
    return {name: rfc_unescape(value) for name, value in msg.sd[SD_ID].items()}


def names(samples, framing):
    return sorted(name for (name, f) in samples if f == framing)


def test_every_sample_rendered_in_both_framings(samples):
    assert names(samples, "cee") == names(samples, "rfc5424")
    assert len(names(samples, "cee")) >= 4


def test_sizes_and_single_line(samples):
    for row in samples.values():
        data = row["datagram"]
        assert len(data.encode()) <= row["max_message"], row["name"]
        assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in data), (row["name"], row["framing"])
        assert not data.endswith("\n")


def test_rfc5424_parses_with_syslog_rfc5424_parser(samples):
    for name in names(samples, "rfc5424"):
        row = samples[(name, "rfc5424")]
        msg = SyslogMessage.parse(row["datagram"])
        params = sd_params(msg)
        action = params["event.action"]
        assert msg.facility == SyslogFacility.authpriv
        assert msg.severity == SEVERITY[action]
        assert msg.version == 1
        assert msg.timestamp == "2026-11-25T17:15:01.123456Z"
        assert msg.hostname == "web-01.example.com"
        assert msg.appname == "jitrun"
        assert msg.procid == 4242
        assert msg.msgid == action
        assert msg.msg and "\n" not in msg.msg
        for param in params:
            assert len(param) <= 32, param


def test_structured_data_equals_cee_fields(samples):
    for name in names(samples, "rfc5424"):
        if name in TRUNCATED:
            continue  # each framing is cut to fit its own size
        params = sd_params(SyslogMessage.parse(samples[(name, "rfc5424")]["datagram"]))
        fields = cee_fields(samples[(name, "cee")]["datagram"])
        assert len(params) == len(fields), name
        for field, value in fields.items():
            got = params[SD_ALIASES.get(field, field)]
            if isinstance(value, list):
                assert json.loads(got) == value, (name, field)
            elif isinstance(value, bool):
                assert got == ("true" if value else "false"), (name, field)
            else:
                assert got == str(value), (name, field)


def test_hostile_argv_survives(samples):
    fields = cee_fields(samples[("hostile", "cee")]["datagram"])
    args = fields["process.args"]
    assert "line1\nline2" in args
    assert "tab\there" in args
    assert 'quote"q' in args
    assert "close]bracket" in args
    assert "back\\\\slash" in args  # escape_bytes doubles a backslash
    assert "del\x7f" in args
    assert "\\x80\\x81\\xfe\\xff" in args  # invalid UTF-8 as \xNN
    assert "caf\u00e9 \U0001F600" in args
    assert 'fake] [x@1 a="b"]' in args
    params = sd_params(SyslogMessage.parse(samples[("hostile", "rfc5424")]["datagram"]))
    assert json.loads(params["process.args"]) == args
    assert params["process.working_directory"] == '/tmp/dir]with"odd\\chars'


@pytest.mark.parametrize("name", sorted(TRUNCATED))
def test_truncated_samples(samples, name):
    cee = cee_fields(samples[(name, "cee")]["datagram"])
    assert cee["jitrun.args_truncated"] is True
    assert any("…[truncated " in a for a in cee["process.args"])
    params = sd_params(SyslogMessage.parse(samples[(name, "rfc5424")]["datagram"]))
    assert params["jitrun.args_truncated"] == "true"
    assert any("…[truncated " in a for a in json.loads(params["process.args"]))
