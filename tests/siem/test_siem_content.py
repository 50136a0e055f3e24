"""The ready-made SIEM content under packaging/siem/ works, and agrees with docs/audit.md.

- rsyslog: `rsyslogd -N1` accepts each snippet, and a private rsyslogd running each snippet turns
  the documented example lines and the datagrams of `cargo run -p jit-audit --example render`
  into one JSON object per line: the event object itself, with the same nested names and types
  for both framings, plus the envelope fields.
- Sigma: `sigma check` passes and `sigma convert` (pySigma Elasticsearch backend, offline)
  turns both rules into queries on the documented fields.
- Elastic: the ingest pipeline and index template reference only documented fields (plus the
  ECS envelope listed below), the template maps every documented field with a matching type,
  and a Python model of the pipeline's processors, run on sample events, yields documents whose
  every field has the template's type.
"""

import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from rsyslog import flatten  # noqa: E402  (one definition for every test that reads events)

ROOT = Path(__file__).resolve().parents[2]
SIEM = ROOT / "packaging" / "siem"
DOC = ROOT / "docs" / "audit.md"
RSYSLOG_SNIPPETS = {
    "cee": SIEM / "rsyslog" / "60-jitrun-cee.conf",
    "rfc5424": SIEM / "rsyslog" / "60-jitrun-rfc5424.conf",
}
SIGMA_DIR = SIEM / "sigma"
SIGMA_PIPELINE = SIGMA_DIR / "pipelines" / "jitrun-ecs.yaml"
BREAK_GLASS = SIGMA_DIR / "jitrun_break_glass.yml"
DENIED_BURST = SIGMA_DIR / "jitrun_denied_burst.yml"
FORGED_RULE = SIGMA_DIR / "jitrun_forged_audit_event.yml"
INGEST_PIPELINE = SIEM / "elastic" / "jitrun-ingest-pipeline.json"
INDEX_TEMPLATE = SIEM / "elastic" / "jitrun-index-template.json"
EVENTS_FILE = "/var/log/jitrun/events.json"
FORGED_FILE = "/var/log/jitrun/forged.json"
SD_ALIASES = {"process.thread.capabilities.effective": "process.thread.caps.effective"}

# ECS fields that the rsyslog snippets and the ingest pipeline add around the event (not part
# of jitrun's schema, so not in docs/audit.md's table). Everything else must be documented.
ENVELOPE = {
    "@timestamp",
    "ecs.version",
    "error.message",
    "event.category",
    "event.type",
    "event.original",
    "log.syslog.hostname",
    "log.syslog.appname",
    "log.syslog.procid",
    "log.syslog.msgid",
    "log.syslog.priority",
    "log.syslog.severity.name",
}
RSYSLOG_ENVELOPE = {
    "cee": {"@timestamp", "log.syslog.hostname", "log.syslog.appname", "log.syslog.procid",
            "log.syslog.priority", "log.syslog.severity.name"},
    "rfc5424": {"@timestamp", "log.syslog.hostname", "log.syslog.appname", "log.syslog.procid",
                "log.syslog.msgid", "log.syslog.priority", "log.syslog.severity.name"},
}

RSYSLOGD = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None)
needs_rsyslogd = pytest.mark.skipif(RSYSLOGD is None and not os.environ.get("CI"), reason="rsyslogd is not installed (make deps)")


# ---------------------------------------------------------------------------------------------
# docs/audit.md


def doc_text():
    return DOC.read_text()


def documented_fields():
    """{field: type} from the Fields table: type is string, int, bool or list."""
    section = doc_text().split("\n## Fields\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9_.]+)` \| ([a-z]+)[^|]*\|", section, re.M)
    fields = dict(rows)
    assert len(fields) >= 30 and set(fields.values()) == {"string", "int", "bool", "list"}, fields
    return fields


def documented_event_types():
    section = doc_text().split("\n## Event types\n", 1)[1].split("\n## ", 1)[0]
    types = re.findall(r"^\| `([a-z_.]+)` \|", section, re.M)
    assert "elevate.start" in types and "break_glass" in types, types
    return types


def documented_examples():
    """{framing: datagram} of the two example lines of "The two framings"."""
    doc = doc_text()
    out = {}
    for framing, heading in (("cee", "### `cee` (default)"), ("rfc5424", "### `rfc5424`")):
        block = doc.split(heading, 1)[1]
        m = re.search(r"```\n(<\d+>[^\n]*)\n```", block)
        assert m, f"no example line under {heading}"
        out[framing] = m.group(1)
    return out


def cee_event(datagram):
    return json.loads(datagram.split(": @cee:", 1)[1])




_RENDERED = None


def rendered():
    """Rows {name, framing, datagram} from the jit-audit render example (every event shape the
    code emits: hostile argv, truncation, end, policy.error), plus the documented examples."""
    global _RENDERED
    if _RENDERED is None:
        out = subprocess.run(
            ["cargo", "run", "-q", "-p", "jit-audit", "--example", "render"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        assert {r["framing"] for r in rows} == {"cee", "rfc5424"}
        for framing, datagram in documented_examples().items():
            rows.append({"name": "docs_example", "framing": framing, "datagram": datagram})
        _RENDERED = rows
    return _RENDERED


# ---------------------------------------------------------------------------------------------
# rsyslog


def wrapper_config(tmp_path, snippet_text, sock, events, rest):
    """A private rsyslog: no system socket, our own imuxsock input with the special parser off
    (what the snippets' comments ask of /etc/rsyslog.conf), the snippet included as a drop-in,
    then a catch-all standing in for the host's other rules."""
    assert EVENTS_FILE in snippet_text and FORGED_FILE in snippet_text
    snippet = tmp_path / "snippet.conf"
    snippet.write_text(snippet_text.replace(EVENTS_FILE, str(events)).replace(FORGED_FILE, str(tmp_path / "forged.json")))
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{tmp_path}")\n'
        'module(load="imuxsock" SysSock.Use="off")\n'
        f'input(type="imuxsock" Socket="{sock}" UseSpecialParser="off" Annotate="on" ParseTrusted="on")\n'
        f'include(file="{snippet}")\n'
        'template(name="rest" type="string" string="%programname% %msg%\\n")\n'
        f'action(type="omfile" file="{rest}" template="rest")\n'
    )
    return conf


def rsyslog_check(conf):
    return subprocess.run([RSYSLOGD, "-N1", "-f", str(conf)], capture_output=True, text=True)


def wait_for(check, what, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def line_count(path):
    return path.read_text().count("\n") if path.exists() else 0


@pytest.mark.parametrize("framing", ["cee", "rfc5424"])
def test_rsyslog_snippet_documents_its_input_and_filter(framing):
    text = RSYSLOG_SNIPPETS[framing].read_text()
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    # The imuxsock guidance is there, as a comment (module parameters may be given only once):
    # the special parser off, the sender's credentials on (docs/audit.md, "Trusting the sender").
    assert ('module(load="imuxsock" SysSock.UseSpecialParser="off" SysSock.Annotate="on" '
            'SysSock.ParseTrusted="on")') in comments
    assert 'module(load="imuxsock"' not in code and 'type="imuxsock"' not in code
    assert '$programname == "jitrun" or $programname == "jitbroker"' in code
    assert f'file="{EVENTS_FILE}"' in code and f'file="{FORGED_FILE}"' in code
    # The sender check comes before the framing's parser (a parsed payload could set $!uid).
    assert code.index("exists($!uid)") < code.index(f'type="{ {"cee": "mmjsonparse", "rfc5424": "mmpstrucdata"}[framing]}"')
    assert code.count("set $.jitrun_broker_uid = -1;") == 1
    module = {"cee": "mmjsonparse", "rfc5424": "mmpstrucdata"}[framing]
    assert f'module(load="{module}")' in code and f'type="{module}"' in code


@needs_rsyslogd
@pytest.mark.parametrize("framing", ["cee", "rfc5424"])
def test_rsyslogd_accepts_snippet(tmp_path, framing):
    text = RSYSLOG_SNIPPETS[framing].read_text()
    conf = wrapper_config(tmp_path, text, tmp_path / "log.sock", tmp_path / "events.json", tmp_path / "rest.log")
    check = rsyslog_check(conf)
    assert check.returncode == 0, check.stdout + check.stderr
    # The check is real: the same snippet with its last closing brace missing is refused.
    broken = text.rstrip()
    assert broken.endswith("}")
    broken = broken[:-1]
    conf = wrapper_config(tmp_path, broken, tmp_path / "log.sock", tmp_path / "events.json", tmp_path / "rest.log")
    assert rsyslog_check(conf).returncode != 0


@needs_rsyslogd
def test_rsyslogd_accepts_both_snippets_together(tmp_path):
    """Installing both by mistake is not a broken config (distinct template names, modules)."""
    both = "\n".join(p.read_text() for p in RSYSLOG_SNIPPETS.values())
    conf = wrapper_config(tmp_path, both, tmp_path / "log.sock", tmp_path / "events.json", tmp_path / "rest.log")
    check = rsyslog_check(conf)
    assert check.returncode == 0, check.stdout + check.stderr


def run_rsyslog(tmp_path, framing, datagrams, expect_events, expect_rest):
    sock, events, rest = tmp_path / "log.sock", tmp_path / "events.json", tmp_path / "rest.log"
    conf = wrapper_config(tmp_path, RSYSLOG_SNIPPETS[framing].read_text(), sock, events, rest)
    log = open(tmp_path / "rsyslogd.log", "w")
    proc = subprocess.Popen(
        [RSYSLOGD, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid")],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for(sock.exists, "rsyslogd's socket")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.connect(str(sock))
        for d in datagrams:
            s.send(d.encode())
        s.close()
        wait_for(lambda: line_count(events) >= expect_events and line_count(rest) >= expect_rest,
                 f"{expect_events} events and {expect_rest} other lines")
        time.sleep(0.3)  # nothing more arrives
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    return ([json.loads(line) for line in events.read_text().splitlines()] if events.exists() else [],
            rest.read_text().splitlines() if rest.exists() else [])


@needs_rsyslogd
@pytest.mark.parametrize("framing", ["cee", "rfc5424"])
def test_rsyslog_snippet_writes_the_events_as_json(tmp_path, framing):
    rows = rendered()
    mine = [r for r in rows if r["framing"] == framing]
    others = [r for r in rows if r["framing"] != framing]
    foreign = [
        "<86>Nov 25 17:15:01 sshd[77]: Accepted publickey for alice",   # not jitrun
        "<85>Nov 25 17:15:01 jitrun[4242]: not a cee message",          # jitrun, not @cee
    ]
    datagrams = [r["datagram"] for r in mine] + [r["datagram"] for r in others] + foreign
    got, rest = run_rsyslog(tmp_path, framing, datagrams, len(mine), len(others) + len(foreign))

    # Exactly this framing's events were converted; everything else fell through untouched.
    assert len(got) == len(mine)
    assert len(rest) == len(others) + len(foreign), rest
    assert any(line.startswith("sshd ") for line in rest)
    assert any("not a cee message" in line for line in rest)

    cee_by_name = {r["name"]: cee_event(r["datagram"]) for r in rows if r["framing"] == "cee"}
    for row, obj in zip(mine, got):
        flat = flatten(obj)
        envelope = {k: v for k, v in flat.items() if k in ENVELOPE}
        assert set(envelope) == RSYSLOG_ENVELOPE[framing], row["name"]
        datetime.fromisoformat(envelope["@timestamp"])
        assert envelope["log.syslog.appname"] == "jitrun"
        assert envelope["log.syslog.priority"] == int(re.match(r"<(\d+)>", row["datagram"]).group(1))
        for key in ("@timestamp", "log"):
            del obj[key]
        expected = cee_by_name[row["name"]]
        if framing == "rfc5424" and "truncated" in row["datagram"]:
            # Each framing is cut to fit its own datagram: same fields and types, other args.
            assert set(flatten(obj)) == set(flatten(expected)), row["name"]
            assert all(isinstance(a, str) for a in obj["process"]["args"])
            assert obj["jitrun"]["args_truncated"] is True
            del obj["process"]["args"], expected["process"]["args"]
        # The event itself, exactly: same nested names, same JSON types, same values.
        assert obj == expected, row["name"]
        for name in flatten(obj):
            assert name in documented_fields(), name
    if framing == "rfc5424":
        # The documented RFC 5424 example becomes the documented cee example's object.
        docs_obj = got[[r["name"] for r in mine].index("docs_example")]
        assert docs_obj == cee_event(documented_examples()["cee"])
        assert docs_obj["process"]["thread"]["capabilities"]["effective"] == ["CAP_NET_ADMIN"]

    # What rsyslog wrote goes through the ingest pipeline into the index template's types.
    for obj in got:
        check_against_template(simulate_pipeline({"message": json.dumps(obj)}))


def test_rfc5424_snippet_maps_every_documented_field_with_its_type():
    text = RSYSLOG_SNIPPETS["rfc5424"].read_text()
    assert "set $.sd = $!rfc5424-sd!jitrun@32473;" in text  # the documented default SD-ID
    # Every `set $!a!b = ...$.sd!<param>...` statement: nested destination -> SD-PARAM, how.
    sets = re.findall(r"set (\$![a-z0-9_!]+) = ([^;]*\$\.sd!([a-z0-9_.]+)[^;]*);", text)
    mapped = {}
    for dest, expr, param in sets:
        field = dest[2:].replace("!", ".")
        mapped.setdefault(field, set()).add((param, expr.split("(")[0] if "(" in expr else "copy"))
    fields = documented_fields()
    assert set(mapped) == set(fields)
    for field, kind in fields.items():
        params = {p for p, _ in mapped[field]}
        assert params == {SD_ALIASES.get(field, field)}, field
        how = {h for _, h in mapped[field]}
        # Strings copied; ints through cnum(); lists through parse_json(); a fallback copy for
        # a value that is not of the documented type.
        assert how == {"string": {"copy"}, "int": {"cnum", "copy"}, "list": {"copy"}, "bool": {"copy"}}[kind], field
        if kind == "list":
            assert f'parse_json($.sd!{SD_ALIASES.get(field, field)}, "\\$!{field.replace(".", "!")}")' in text
        if kind == "bool":
            sd = SD_ALIASES.get(field, field)
            assert f'if $.sd!{sd} == "true" then set $!{field.replace(".", "!")} = $.jitrun_bool!t;' in text
            assert f'if $.sd!{sd} == "false" then set $!{field.replace(".", "!")} = $.jitrun_bool!f;' in text


# ---------------------------------------------------------------------------------------------
# Sigma


def sigma(*args):
    pytest.importorskip("sigma.cli.main", reason="sigma-cli is not installed (make deps)")
    pytest.importorskip("sigma.backends.elasticsearch", reason="pysigma-backend-elasticsearch is not installed (make deps)")
    code = "import sys; from sigma.cli.main import main; sys.argv[0] = 'sigma'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)


def convert(target, rule):
    r = sigma("convert", "-t", target, "-p", str(SIGMA_PIPELINE), str(rule))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def sigma_docs():
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (make deps)")
    return {p.name: list(yaml.safe_load_all(p.read_text())) for p in (BREAK_GLASS, DENIED_BURST)}


def detection_fields(detection):
    fields = set()
    for name, value in detection.items():
        if name == "condition":
            continue
        for item in value if isinstance(value, list) else [value]:
            for key in item:
                fields.add(key.split("|")[0])
    return fields


def test_sigma_rules_use_documented_fields_and_logsource():
    docs = sigma_docs()
    fields = documented_fields()
    (bg,) = docs[BREAK_GLASS.name]
    assert bg["level"] == "critical"
    assert bg["detection"]["selection_event"] == {"event.action": "break_glass"}
    assert bg["detection"]["selection_use"] == {"event.action": "elevate.start", "jitrun.grant.break_glass": True}
    base, corr = docs[DENIED_BURST.name]
    assert base["detection"]["selection"] == {"event.action": "elevate.deny"}
    assert corr["correlation"]["type"] == "event_count"
    assert corr["correlation"]["rules"] == [base["name"]]
    assert corr["correlation"]["group-by"] == ["user.name"]
    assert corr["correlation"]["condition"] == {"gte": 10}
    for rule in (bg, base):
        assert rule["logsource"]["product"] == "linux" and rule["logsource"]["service"] == "jitrun"
        used = detection_fields(rule["detection"]) | set(rule.get("fields", []))
        assert used <= set(fields), used - set(fields)
    assert set(corr["correlation"]["group-by"]) <= set(fields)
    # The values the rules match on are documented event types.
    types = documented_event_types()
    assert {"break_glass", "elevate.start", "elevate.deny"} <= set(types)


def test_sigma_check_passes():
    # attacktag and d3_fendtag download the MITRE catalogues at run time: no network here.
    r = sigma("check", "--fail-on-error", "--fail-on-issues", "-x", "attacktag", "-x", "d3_fendtag",
              str(BREAK_GLASS), str(DENIED_BURST), str(FORGED_RULE))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Found 0 errors, 0 condition errors and 0 issues" in r.stdout, r.stdout


def test_sigma_converts_break_glass_rule():
    lucene = convert("lucene", BREAK_GLASS).strip().splitlines()[-1]
    assert lucene == "event.action:break_glass OR (event.action:elevate.start AND jitrun.grant.break_glass:true)"
    esql = convert("esql", BREAK_GLASS)
    assert esql.startswith("from logs-jitrun.audit-* ")  # our processing pipeline's index
    for needle in ('event.action=="break_glass"', 'event.action=="elevate.start"', "jitrun.grant.break_glass==true"):
        assert needle in esql, esql
    eql = convert("eql", BREAK_GLASS)
    assert 'event.action:"break_glass"' in eql and "jitrun.grant.break_glass:true" in eql, eql


def forged_fields(framing):
    """The dotted fields a drop-in sets on a forged message (its `unset $!;` ... `stop` branch)."""
    text = RSYSLOG_SNIPPETS[framing].read_text()
    branch = text.split("unset $!;", 1)[1].split("stop", 1)[0]
    return {m.replace("!", ".") for m in re.findall(r"set \$!([a-z@_!]+) =", branch)}


def test_forged_rule_matches_what_the_dropins_write():
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (make deps)")
    (rule,) = yaml.safe_load_all(FORGED_RULE.read_text())
    assert rule["logsource"] == {"product": "linux", "service": "jitrun_forged",
                                 "definition": rule["logsource"]["definition"]}
    assert rule["detection"]["selection"] == {"event.action": "audit.forged"}
    cee, rfc = forged_fields("cee"), forged_fields("rfc5424")
    assert cee == rfc  # both drop-ins write the same alert
    assert {"event.action", "event.kind", "event.reason", "user.id", "process.pid", "event.original"} <= cee
    used = detection_fields(rule["detection"]) | set(rule["fields"])
    assert used <= cee, used - cee
    assert 'set $!event!action = "audit.forged";' in RSYSLOG_SNIPPETS["cee"].read_text()


def test_sigma_converts_forged_rule():
    lucene = convert("lucene", FORGED_RULE).strip().splitlines()[-1]
    assert lucene == "event.action:audit.forged"
    esql = convert("esql", FORGED_RULE)
    assert esql.startswith("from logs-jitrun.forged-* "), esql  # not the audit events' stream
    assert convert("esql", BREAK_GLASS).startswith("from logs-jitrun.audit-* ")


def test_sigma_converts_denied_burst_correlation():
    esql = convert("esql", DENIED_BURST)
    assert esql.startswith("from logs-jitrun.audit-* "), esql
    assert 'event.action=="elevate.deny"' in esql
    assert "date_trunc(5minutes, @timestamp)" in esql
    assert re.search(r"by timebucket, user\.name\s*\n\| where event_count >= 10", esql), esql
    eql = convert("eql", DENIED_BURST)
    assert "sequence by user.name with maxspan=5m" in eql and "runs=10" in eql, eql
    assert 'event.action:"elevate.deny"' in eql
    # Backends without correlations refuse the file rather than silently dropping the threshold.
    r = sigma("convert", "-t", "lucene", "-p", str(SIGMA_PIPELINE), str(DENIED_BURST))
    assert r.returncode != 0 and "correlation" in (r.stdout + r.stderr)


# ---------------------------------------------------------------------------------------------
# Elastic: a model of the ingest processors the pipeline uses


class PipelineError(Exception):
    pass


def get_field(doc, path):
    cur = doc
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def has_field(doc, path):
    cur = doc
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False
        cur = cur[part]
    return True


def set_field(doc, path, value):
    parts = path.split(".")
    cur = doc
    for part in parts[:-1]:
        nxt = cur.get(part)
        if nxt is None:
            nxt = cur[part] = {}
        if not isinstance(nxt, dict):
            raise PipelineError(f"cannot set [{path}]: [{part}] is not an object")
        cur = nxt
    cur[parts[-1]] = value


def remove_field(doc, path):
    parts = path.split(".")
    parent = get_field(doc, ".".join(parts[:-1])) if len(parts) > 1 else doc
    del parent[parts[-1]]


def merge(target, source):
    for key, value in source.items():
        if isinstance(target.get(key), dict) and isinstance(value, dict):
            merge(target[key], value)
        else:
            target[key] = value


CONDITIONS = [
    (re.compile(r"^ctx\.([a-z_]+)\?\.([a-z_]+) (==|!=) null$"),
     lambda m, d: (get_field(d, f"{m[1]}.{m[2]}") is None) == (m[3] == "==")),
    (re.compile(r"^ctx\.([a-z_]+)\?\.([a-z_]+) == '([a-z_.]+)'$"),
     lambda m, d: get_field(d, f"{m[1]}.{m[2]}") == m[3]),
    (re.compile(r"^ctx\['(@timestamp)'\] instanceof String$"),
     lambda m, d: isinstance(d.get(m[1]), str)),
]


def condition_fields(cond):
    for rx, _ in CONDITIONS:
        m = rx.match(cond)
        if m:
            return {m[1]} if m[1].startswith("@") else {f"{m[1]}.{m[2]}"}
    raise AssertionError(f"the model does not know the condition {cond!r}")


def condition(cond, doc):
    for rx, fn in CONDITIONS:
        m = rx.match(cond)
        if m:
            return fn(m, doc)
    raise AssertionError(f"the model does not know the condition {cond!r}")


def render_template(value, doc, ingest):
    if not isinstance(value, str):
        return copy.deepcopy(value)

    def sub(m):
        name = m.group(1).strip()
        if name.startswith("_ingest."):
            return str(ingest[name[len("_ingest."):]])
        v = get_field(doc, name)
        return "" if v is None else str(v)

    return re.sub(r"\{\{\{?([^{}]+)\}?\}\}", sub, value)


def to_es_date(dt):
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_date(value, fmt, tz):
    if fmt == "ISO8601":
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    java = {"MMM  d HH:mm:ss": r"([A-Z][a-z]{2})  (\d) (\d\d):(\d\d):(\d\d)",
            "MMM d HH:mm:ss": r"([A-Z][a-z]{2}) (\d{1,2}) (\d\d):(\d\d):(\d\d)"}
    assert fmt in java, f"the model does not know the date format {fmt!r}"
    m = re.fullmatch(java[fmt], value)
    if not m:
        raise ValueError(value)
    assert tz == "UTC"
    month = datetime.strptime(m[1], "%b").month
    return datetime(datetime.now(timezone.utc).year, month, int(m[2]), int(m[3]), int(m[4]), int(m[5]),
                    tzinfo=timezone.utc)


def grok_regex(pattern, definitions):
    names = {}

    def sub(m):
        name, field = m.group(1), m.group(2)
        assert name in definitions, f"grok pattern {name} must be defined in pattern_definitions"
        group = f"g{len(names)}"
        names[group] = field
        return f"(?P<{group}>{definitions[name]})"

    return re.compile(re.sub(r"%\{([A-Z_]+):([a-z_.@]+)\}", sub, pattern)), names


def run_processor(kind, p, doc, ingest):
    if kind == "grok":
        value = get_field(doc, p["field"])
        if value is None:
            if p.get("ignore_missing"):
                return
            raise PipelineError(f"field [{p['field']}] missing")
        for pattern in p["patterns"]:
            rx, names = grok_regex(pattern, p["pattern_definitions"])
            m = rx.search(value)
            if m:
                for group, field in names.items():
                    if m.group(group) is not None:
                        set_field(doc, field, m.group(group))
                return
        raise PipelineError("Provided Grok expressions do not match field value")
    if kind == "convert":
        value = get_field(doc, p["field"])
        if value is None:
            if p.get("ignore_missing"):
                return
            raise PipelineError(f"field [{p['field']}] missing")
        assert p["type"] == "long"
        set_field(doc, p.get("target_field", p["field"]), int(value))
        return
    if kind == "gsub":
        value = get_field(doc, p["field"])
        if value is None:
            if p.get("ignore_missing"):
                return
            raise PipelineError(f"field [{p['field']}] missing")
        set_field(doc, p.get("target_field", p["field"]), re.sub(p["pattern"], p["replacement"], value))
        return
    if kind == "json":
        try:
            parsed = json.loads(get_field(doc, p["field"]))
        except (TypeError, ValueError) as e:
            raise PipelineError(f"cannot parse JSON: {e}")
        assert p.get("add_to_root") and p.get("add_to_root_conflict_strategy") == "merge"
        if not isinstance(parsed, dict):
            raise PipelineError("cannot add non-map fields to root of document")
        merge(doc, parsed)
        return
    if kind == "rename":
        if not has_field(doc, p["field"]):
            if p.get("ignore_missing"):
                return
            raise PipelineError(f"field [{p['field']}] missing")
        if has_field(doc, p["target_field"]):
            raise PipelineError(f"field [{p['target_field']}] already exists")
        value = get_field(doc, p["field"])
        remove_field(doc, p["field"])
        set_field(doc, p["target_field"], value)
        return
    if kind == "remove":
        for field in p["field"] if isinstance(p["field"], list) else [p["field"]]:
            if has_field(doc, field):
                remove_field(doc, field)
            elif not p.get("ignore_missing"):
                raise PipelineError(f"field [{field}] missing")
        return
    if kind == "date":
        value = get_field(doc, p["field"])
        for fmt in p["formats"]:
            try:
                dt = parse_date(value, fmt, p.get("timezone", "UTC"))
                break
            except ValueError:
                continue
        else:
            raise PipelineError(f"unable to parse date [{value}]")
        set_field(doc, p.get("target_field", "@timestamp"), to_es_date(dt))
        return
    if kind == "set":
        if p.get("override", True) is False and get_field(doc, p["field"]) not in (None, ""):
            return
        set_field(doc, p["field"], render_template(p["value"], doc, ingest))
        return
    if kind == "append":
        current = get_field(doc, p["field"])
        current = [] if current is None else current if isinstance(current, list) else [current]
        set_field(doc, p["field"], current + [render_template(p["value"], doc, ingest)])
        return
    raise AssertionError(f"the model does not know the {kind} processor")


def simulate_pipeline(doc, pipeline=None):
    pipeline = pipeline or json.loads(INGEST_PIPELINE.read_text())
    doc = copy.deepcopy(doc)
    ingest = {"timestamp": to_es_date(datetime.now(timezone.utc))}
    for entry in pipeline["processors"]:
        ((kind, p),) = entry.items()
        if "if" in p and not condition(p["if"], doc):
            continue
        try:
            run_processor(kind, p, doc, ingest)
        except (PipelineError, ValueError) as e:
            if p.get("ignore_failure"):
                continue
            ingest.update(on_failure_message=str(e), on_failure_processor_type=kind,
                          on_failure_processor_tag=p.get("tag", ""))
            for handler in pipeline.get("on_failure", []):
                ((hkind, hp),) = handler.items()
                run_processor(hkind, hp, doc, ingest)
            return doc
    return doc


def processor_field_refs(pipeline):
    refs = set()
    for entry in pipeline["processors"] + pipeline.get("on_failure", []):
        ((kind, p),) = entry.items()
        for key in ("field", "target_field"):
            if key in p:
                refs |= set(p[key]) if isinstance(p[key], list) else {p[key]}
        for pattern in p.get("patterns", []):
            refs |= set(re.findall(r"%\{[A-Z_]+:([a-z_.@]+)\}", pattern))
        if "if" in p:
            refs |= condition_fields(p["if"])
    return refs


def template_mapping():
    """{dotted field: mapping type} of the index template's leaves."""
    out = {}

    def walk(props, prefix):
        for name, spec in props.items():
            if "properties" in spec:
                walk(spec["properties"], f"{prefix}{name}.")
            else:
                out[f"{prefix}{name}"] = spec["type"]

    walk(json.loads(INDEX_TEMPLATE.read_text())["template"]["mappings"]["properties"], "")
    return out


def conforms(value, es_type):
    if isinstance(value, list):
        return all(conforms(v, es_type) for v in value)
    if es_type in ("keyword", "match_only_text", "text"):
        return isinstance(value, str)
    if es_type == "long":
        return isinstance(value, int) and not isinstance(value, bool)
    if es_type == "boolean":
        return isinstance(value, bool)
    if es_type == "date":
        if not isinstance(value, str):
            return False
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True
    raise AssertionError(f"unexpected mapping type {es_type}")


def check_against_template(doc):
    mapping = template_mapping()
    assert get_field(doc, "event.kind") == "event", doc.get("error")
    assert "_tmp" not in doc and "message" not in doc
    for field, value in flatten(doc).items():
        assert field in mapping, f"{field} is not mapped"
        assert conforms(value, mapping[field]), (field, value, mapping[field])
    return doc


EXPECTED_TYPES = {"string": {"keyword", "match_only_text", "date"}, "int": {"long"},
                  "bool": {"boolean"}, "list": {"keyword"}}


def test_elastic_files_are_valid_json():
    pipeline = json.loads(INGEST_PIPELINE.read_text())
    template = json.loads(INDEX_TEMPLATE.read_text())
    assert pipeline["processors"] and pipeline["on_failure"]
    assert template["template"]["settings"]["index.default_pipeline"] == "jitrun-audit"
    assert template["index_patterns"] == ["logs-jitrun.audit-*"] and "data_stream" in template


def test_elastic_files_reference_only_documented_fields():
    fields = set(documented_fields())
    pipeline = json.loads(INGEST_PIPELINE.read_text())
    refs = processor_field_refs(pipeline)
    assert {"message", "event.action", "@timestamp", "event.category", "event.type"} <= refs
    unknown = {r for r in refs if r not in fields and r not in ENVELOPE
               and r != "message" and not r.startswith("_tmp")}
    assert not unknown, unknown
    mapped = set(template_mapping())
    assert not mapped - fields - ENVELOPE, mapped - fields - ENVELOPE


def test_index_template_maps_every_documented_field_with_its_type():
    mapping = template_mapping()
    for field, kind in documented_fields().items():
        assert field in mapping, f"{field} is documented but not mapped"
        assert mapping[field] in EXPECTED_TYPES[kind], (field, kind, mapping[field])
    for field in ("process.args", "user.name", "user.id", "jitrun.grant.id", "host.name"):
        assert mapping[field] == "keyword"
    for field in ("process.pid", "process.exit_code", "jitrun.duration_ms"):
        assert mapping[field] == "long"
    assert mapping["jitrun.grant.expires"] == "date" and mapping["@timestamp"] == "date"
    assert mapping["jitrun.grant.break_glass"] == "boolean"


def pipeline_inputs(datagram):
    """The shapes the pipeline accepts for one cee datagram: the raw syslog line, the
    message without its header, rsyslog's JSON line, and an already decoded document."""
    event = cee_event(datagram)
    rsyslog_line = dict(event, **{"@timestamp": "2026-11-25T17:15:01.123456+00:00",
                                  "log": {"syslog": {"hostname": "web-01", "appname": "jitrun",
                                                     "procid": "4242", "priority": 85,
                                                     "severity": {"name": "notice"}}}})
    return {
        "raw_line": {"message": datagram},
        "cee_message": {"message": "@cee:" + datagram.split(": @cee:", 1)[1],
                        "@timestamp": "2026-11-25T17:15:01.123Z"},
        "rsyslog_json": {"message": json.dumps(rsyslog_line)},
        "decoded": dict(copy.deepcopy(event), **{"@timestamp": "2026-11-25T17:15:01.123Z"}),
    }


def test_pipeline_turns_documented_example_into_typed_ecs():
    datagram = documented_examples()["cee"]
    event = cee_event(datagram)
    for shape, doc in pipeline_inputs(datagram).items():
        out = check_against_template(simulate_pipeline(doc))
        flat, want = flatten(out), flatten(event)
        for field, value in want.items():
            assert flat[field] == value, (shape, field)
        assert out["event"]["category"] == ["process"] and out["event"]["type"] == ["start"], shape
        assert out["ecs"]["version"]
        if shape == "raw_line":
            assert out["@timestamp"].endswith("-11-25T17:15:01.000Z")
            assert out["log"]["syslog"] == {"appname": "jitrun", "procid": "4242", "priority": 85}
            assert out["event"]["original"] == datagram
        if shape in ("cee_message", "rsyslog_json"):
            assert out["@timestamp"] == "2026-11-25T17:15:01.123Z"
            assert out["event"]["original"] == doc["message"]
    # RFC 3164 pads a one-digit day with a space.
    padded = datagram.replace("Nov 25", "Nov  5")
    assert simulate_pipeline({"message": padded})["@timestamp"].endswith("-11-05T17:15:01.000Z")


def test_pipeline_types_every_rendered_event():
    for row in rendered():
        if row["framing"] != "cee":
            continue
        for shape, doc in pipeline_inputs(row["datagram"]).items():
            out = check_against_template(simulate_pipeline(doc))
            assert out["event"]["action"] == cee_event(row["datagram"])["event"]["action"], (row["name"], shape)
            assert out["event"]["category"] and out["event"]["type"], (row["name"], shape)


def test_pipeline_categorises_every_documented_event_type():
    base = cee_event(documented_examples()["cee"])
    for action in documented_event_types():
        event = copy.deepcopy(base)
        event["event"]["action"] = action
        out = check_against_template(simulate_pipeline({"message": "@cee:" + json.dumps(event)}))
        assert out["event"]["category"] and out["event"]["type"], action
        assert all(isinstance(v, str) for v in out["event"]["category"] + out["event"]["type"])
    out = simulate_pipeline({"message": "@cee:" + json.dumps(dict(base, event={"action": "break_glass", "kind": "event"}))})
    assert out["event"]["category"] == ["iam"] and out["event"]["type"] == ["admin"]
    out = simulate_pipeline({"message": "@cee:" + json.dumps(dict(base, event={"action": "elevate.deny", "kind": "event"}))})
    assert out["event"]["type"] == ["denied"]


def test_pipeline_flags_unparseable_messages():
    out = simulate_pipeline({"message": "<85>Nov 25 17:15:01 jitrun[4242]: @cee:{broken"})
    assert out["event"]["kind"] == "pipeline_error"
    assert out["error"]["message"] and "parse_event" in out["error"]["message"][0]
    # A JSON line that mentions @cee: inside a value is not cut at the cookie.
    event = cee_event(documented_examples()["cee"])
    event["process"]["args"] = ["echo", "x @cee: y"]
    out = check_against_template(simulate_pipeline({"message": json.dumps(event)}))
    assert out["process"]["args"] == ["echo", "x @cee: y"]
