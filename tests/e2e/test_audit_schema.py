"""docs/audit.md, docs/audit.schema.json and the events jitrun really sends cannot drift apart.

* the field table of docs/audit.md and the JSON Schema list the same fields with the same types;
* jitrun, run as a throwaway user through every event it emits (start, end by exit, signal,
  expiry, revocation, exec failure and a killed supervisor, deny, policy.error, break_glass, containment,
  truncation, a recorded session: its chunks, its cap reached, its disk full), in both framings: every event validates against the schema (RFC 5424 rebuilt
  from its structured data);
* per event type, the fields docs/audit.md says the event carries ("always" and "when
  applicable") are exactly the fields seen in the captured events of that type, and every
  "always" field is required by the schema (removing it fails validation).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import jsonschema
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from jitlab import _proc_table  # noqa: E402
from session_e2e import small_tmpfs  # noqa: E402
from rsyslog import AUDIT_DOC, event_from_sd, flatten, load_schema, nest, schema_fields, sd_aliases  # noqa: E402

DOC_TYPES = {"string": "string", "int": "integer", "bool": "boolean", "list": "array"}
JITRUN_EVENTS = ["elevate.start", "elevate.end", "elevate.deny", "policy.error", "break_glass"]
FRAMER_FIELDS = {"jitrun.args_truncated", "jitrun.fields_truncated"}


# ---- docs/audit.md


def doc_field_table() -> dict[str, tuple[str, str]]:
    """The field table: name -> (documented type, events column)."""
    doc = AUDIT_DOC.read_text()
    sec = doc.split("\n## Fields\n", 1)[1]
    table = sec[sec.index("| field | type | events | meaning |"):].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        m = re.fullmatch(r"`([a-z0-9_.]+)`", cells[0])
        assert m, f"unparseable row in docs/audit.md's field table: {line}"
        assert m.group(1) not in rows, f"field listed twice: {m.group(1)}"
        rows[m.group(1)] = (cells[1], cells[2])
    assert len(rows) > 20, "docs/audit.md's field table was not found"
    return rows


def doc_event_lists() -> dict[str, tuple[set[str], set[str]]]:
    """"What each event carries": event type -> (always, when applicable), as field names."""
    known = set(doc_field_table())
    doc = AUDIT_DOC.read_text()
    sec = doc.split("What each event carries", 1)[1].split("\nConsumers must ignore", 1)[0]
    out = {}
    for item in re.split(r"\n(?=- \*\*)", sec):
        m = re.match(r"- \*\*([a-z_.]+)\*\*", item)
        if not m or m.group(1) not in JITRUN_EVENTS:
            continue
        parts = re.split(r"\bWhen applicable\b[^:]*:", item.split("always:", 1)[-1])
        assert "always:" in item and len(parts) == 2, f"docs/audit.md: {m.group(1)} lacks its two lists"
        always_txt, cond_txt = parts
        names = lambda txt: {n for n in re.findall(r"`([a-z0-9_.]+)`", txt) if n in known}  # noqa: E731
        out[m.group(1)] = (names(always_txt), names(cond_txt) - names(always_txt))
    assert set(out) == set(JITRUN_EVENTS), f"docs/audit.md describes {sorted(out)}"
    return out


# ---- validation


@pytest.fixture(scope="module")
def schema():
    s = load_schema()
    jsonschema.Draft202012Validator.check_schema(s)
    return s


def problems(schema, event: dict) -> list[str]:
    v = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(event)]


def event_object(rec) -> dict:
    """The event object of a datagram the lab's listener collected."""
    if rec.framing == "cee":
        return rec.json
    assert rec.framing == "rfc5424", rec
    return event_from_sd(rec.params)


# ---- the scenarios


BAD_INTERP = "schema-bad-interpreter"


def _wait(pred, what: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _supervisor_killed(lab, a, token) -> list:
    """Start a long command, SIGKILL its supervisor: the watchdog ends it and logs the end."""
    grant = lab.user_file(a, ".jitlab/schema-grant", token + "\n")
    with lab.spawn_as_user(a, [str(lab.jitrun), "--grant", str(grant), "--", "/usr/bin/sleep", "60"]) as run:
        _wait(lambda: "elevate.start" in [e.action for e in run.events()], "elevate.start")
        assert _proc_table()[run.pid][2] == str(lab.jitrun), "the spawned process is not jitrun"
        _wait(lambda: run.watchdog_pids(), "the watchdog")
        supervisor = run.supervisor_pid()
        assert supervisor != run.pid, "no supervisor besides the front (crates/jitrun/src/front.rs)"
        os.kill(supervisor, signal.SIGKILL)
        _wait(lambda: "elevate.end" in [e.action for e in run.events()], "the watchdog's elevate.end")
        return run.events()


def _revoked(lab, a, token) -> list:
    """Start a long command, put its grant on the revocation list: the watchdog ends it."""
    grant = lab.user_file(a, ".jitlab/schema-revoked-grant", token + "\n")
    try:
        with lab.spawn_as_user(a, [str(lab.jitrun), "--grant", str(grant), "--", "/usr/bin/sleep", "60"]) as run:
            _wait(lambda: "elevate.start" in [e.action for e in run.events()], "elevate.start")
            lab.write_revocations([lab.revocation_entry(token, reason="schema test")])
            _wait(lambda: "elevate.end" in [e.action for e in run.events()], "elevate.end after revocation")
            return run.events()
    finally:
        lab.clear_revocations()


def drop_spooled(lab) -> None:
    """Forget events earlier tests left in the lab's spool (they would reach our runs first)."""
    for f in (lab.state / "spool").glob("*.dgram"):
        f.unlink()


# session.io events jitrun sent during the scenarios, per framing (validated on their own:
# docs/audit.md's per-event lists are about jitrun's run events).
CHUNKS: dict[str, list] = {}


def recorded_scenarios(lab, world, framing: str, run) -> None:
    """A recorded run under a break-glass grant (start, break_glass and end name the recording),
    one that reaches its cap, one whose disk fills, one refused: no directory to record in."""
    a = world.alice
    records = f'[[rule]]\nname = "records"\nusers = ["{a}"]\ncommands = ["/usr/bin/sh -c *"]\nrecord = true\n'
    lab.set_policy(world.policy, dropins={"91-records.toml": records})
    assert run(["/usr/bin/sh", "-c", "echo recorded"], grant=lab.mint(a, "records", break_glass=True)).returncode == 0
    flood = ["/usr/bin/sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' a; sleep 5"]
    settings = lab.conf_files / "jitrun.toml"
    lab._write_conf(settings, settings.read_text() + '\n[record]\nmax_bytes = "64K"\n')
    end = run(flood, grant=lab.mint(a, "records")).event("elevate.end")
    assert end.get("jitrun.end_reason") == "recording_limit", end
    lab.write_settings(framing=framing)
    with small_tmpfs("256k") as d:
        end = run(flood, grant=lab.mint(a, "records"), binds=[(d, "/var/log/jitrun/sessions")]).event("elevate.end")
        assert end.get("jitrun.end_reason") == "recording_failed", end
    lab.sessions.rename(lab.sessions.with_name("sessions-away"))
    try:
        assert run(["/usr/bin/sh", "-c", "true"], grant=lab.mint(a, "records")).returncode == 1
    finally:
        lab.sessions.with_name("sessions-away").rename(lab.sessions)


def run_scenarios(lab, world, framing: str) -> list:
    a, b = world.alice, world.bin
    drop_spooled(lab)
    lab.install_file(BAD_INTERP, b"#!/nonexistent/interpreter\n", 0o755)
    extra = f'[[rule]]\nname = "bad-interp"\nusers = ["{a}"]\ncommands = ["{b}/{BAD_INTERP}"]\n'
    lab.write_settings(framing=framing)
    lab.set_policy(world.policy, dropins={"90-schema.toml": extra})
    recs = []
    CHUNKS[framing] = []

    def run(argv, **kw):
        res = lab.run_as_user(a, argv, **kw)
        assert not res.timed_out, str(res)
        recs.extend(e for e in res.events if e.action != "session.io")
        CHUNKS[framing].extend(e for e in res.events if e.action == "session.io")
        return res

    plain = lambda **kw: lab.mint(a, "plain", **kw)  # noqa: E731
    # start + end (exit 0) with every grant field, on a terminal
    run(["/usr/bin/true", "x"], grant=plain(approvers=[world.bob.name], ticket="OPS-1", reason='a "b" [c] \\ d'),
        pty=True)
    # break_glass (with ticket and reason) on a terminal
    run(["/usr/bin/true"], grant=plain(break_glass=True, ticket="INC-9", reason="outage"), pty=True)
    # end: exit status, signal, expiry, exec failure, supervisor killed
    assert run(["/usr/bin/sh", "-c", "exit 3"], grant=plain()).returncode == 3
    assert run(["/usr/bin/sh", "-c", "kill -TERM $$"], grant=plain()).returncode == 128 + 15
    run(["/usr/bin/sleep", "60"], grant=plain(ttl="2s"))
    assert run([str(b / BAD_INTERP)], grant=lab.mint(a, "bad-interp")).returncode == 127
    recs.extend(_supervisor_killed(lab, a, plain()))
    recs.extend(_revoked(lab, a, plain()))
    # standing access (no grant), a named run-as user, root
    run(["/usr/bin/id"])
    run(["/usr/bin/cat", "/proc/self/status"], grant=lab.mint(a, "svc-bind"))
    run(["/usr/bin/cat", "/proc/self/status"], grant=lab.mint(a, "read-all"))
    # argv that needs escaping, and one too big for a datagram
    run(["/usr/bin/true", "l1\nl2", 'q"', "]", "\\", b"\xff", "\\xff", "tab\there", "\x1b[31m"], grant=plain())
    run(["/usr/bin/true", "A" * 50_000, "B" * 50_000], grant=plain())
    # denials: no rule (with -u, on a terminal), a rule that needs approvals, command not found
    run(["/usr/bin/uname"], options=["-u", "root"], pty=True)
    run(["/usr/bin/true"], grant=lab.mint(a, "approved"))
    # long cwd + long unknown command: the command is cut first, then the other fields
    top = a.home / ("d" * 250)
    deep = top.joinpath(*["d" * 250] * 14)
    lab._user_dirs(a, deep)
    try:
        run(["/nonexistent/" + "p" * 250 + "/" + "q" * 3700], cwd=deep)
    finally:
        shutil.rmtree(top)
    # recorded runs, and a policy.error naming its rule: a rule that records and cannot
    recorded_scenarios(lab, world, framing, run)
    lab.set_policy(world.policy, dropins={"90-schema.toml": extra})
    # policy.error: a broken policy (with -u, on a terminal)
    lab.set_policy("[[rule]]\nname = 1\n")
    run(["/usr/bin/true"], options=["-u", "root"], pty=True)
    lab.set_policy(world.policy, dropins={"90-schema.toml": extra})
    # policy.error after the command was resolved: fail_closed with no socket refuses, and the
    # refusal waits in the spool until the next run can send it
    lab.write_settings(framing=framing, socket=str(lab.tmp / "audit" / "no-such-socket"))
    assert run(["/usr/bin/true", "spooled"], grant=plain()).returncode == 1
    lab.write_settings(framing=framing)
    res = run(["/usr/bin/true", "after"], grant=plain())
    assert res.actions()[0] == "policy.error", str(res)
    return recs


@pytest.fixture(scope="module")
def captured(lab, world) -> dict[str, list]:
    out = {}
    try:
        for framing in ("cee", "rfc5424"):
            out[framing] = run_scenarios(lab, world, framing)
    finally:
        lab.write_settings()
        lab.set_policy(world.policy, dropins={})
        lab.kill_user_processes()
    return out


# ---- the tests


def test_doc_field_table_and_schema_list_the_same_fields(schema):
    documented = {name: DOC_TYPES[t.split()[0]] for name, (t, _) in doc_field_table().items()}
    in_schema = schema_fields(schema)
    assert sorted(set(documented) - set(in_schema)) == [], "documented but not in docs/audit.schema.json"
    assert sorted(set(in_schema) - set(documented)) == [], "in docs/audit.schema.json but not documented"
    assert documented == in_schema, "types differ between docs/audit.md and docs/audit.schema.json"


def test_doc_alias_table_covers_every_long_field(schema):
    aliases = sd_aliases()
    for name in schema_fields(schema):
        sd_name = aliases.get(name, name)
        assert len(sd_name) <= 32, f"{name}: SD-PARAM name longer than 32 characters and no alias"
    assert set(aliases) <= set(schema_fields(schema))


def test_doc_event_lists_only_name_documented_fields():
    table = doc_field_table()
    for action, (always, cond) in doc_event_lists().items():
        assert always, action
        assert not (always | cond) & FRAMER_FIELDS, f"{action}: framer fields belong to every event"
        assert {"event.action", "event.kind", "jitrun.schema_version"} <= always, action
        assert (always | cond) <= set(table), action


def code_refusal_codes() -> dict[str, set[str]]:
    """The deny codes in the source: jitrun's Refusal::deny / Refusal::config literals, its
    grant error codes, and jit-policy's DenyCode names."""
    root = AUDIT_DOC.parents[1] / "crates"
    src = "\n".join(p.read_text() for p in sorted((root / "jitrun" / "src").rglob("*.rs")))
    deny = set(re.findall(r'Refusal::deny\(\s*"([a-z_]+)"', src))
    config = set(re.findall(r'Refusal::config\(\s*"([a-z_]+)"', src))
    grant_fn = src.split("pub fn grant_code", 1)[1].split("\n}\n", 1)[0]
    deny |= set(re.findall(r'=> "([a-z_]+)"', grant_fn))
    policy = (root / "jit-policy" / "src" / "decide.rs").read_text()
    deny |= set(re.findall(r'DenyCode::\w+ => "([a-z_]+)"', policy))
    return {"elevate.deny": deny, "policy.error": config}


def test_doc_lists_every_refusal_code():
    doc = AUDIT_DOC.read_text()
    sec = doc.split("### Refusal codes", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for action in ("elevate.deny", "policy.error"):
        m = re.search(rf"^- \*\*{re.escape(action)}\*\*:(.*?)(?=^- |\Z)", sec, re.M | re.S)
        assert m, f"docs/audit.md lists no refusal codes for {action}"
        documented[action] = set(re.findall(r"`([a-z_]+)`", m.group(1)))
    in_code = code_refusal_codes()
    assert len(in_code["elevate.deny"]) > 20 and len(in_code["policy.error"]) > 5, in_code
    assert documented == in_code, {a: (sorted(documented[a] - in_code[a]), sorted(in_code[a] - documented[a]))
                                   for a in in_code}


def test_every_captured_event_validates(schema, captured):
    for framing, recs in captured.items():
        assert recs, framing
        for rec in recs:
            assert rec.framing == framing, rec
            bad = problems(schema, event_object(rec))
            assert not bad, f"{framing} event does not match docs/audit.schema.json: {bad}\n{rec.raw[:3000]!r}"


def test_every_jitrun_event_type_and_end_reason_was_seen(captured):
    for framing, recs in captured.items():
        objs = [event_object(r) for r in recs]
        actions = {o["event"]["action"] for o in objs}
        assert actions == set(JITRUN_EVENTS), framing
        reasons = {o["jitrun"]["end_reason"] for o in objs if o["event"]["action"] == "elevate.end"}
        assert reasons == {"exit", "signal", "expired", "revoked", "supervisor_killed", "recording_failed",
                           "recording_limit"}, framing
        assert {o["jitrun"].get("containment") for o in objs if o["event"]["action"] == "elevate.start"} <= {
            "cgroup", "process_group"}


def test_every_session_io_event_jitrun_sent_validates(schema, captured):
    for framing, chunks in CHUNKS.items():
        assert len(chunks) > 10, framing
        for rec in chunks:
            bad = problems(schema, event_object(rec))
            assert not bad, f"{framing} session.io does not match docs/audit.schema.json: {bad}\n{rec.raw[:3000]!r}"


def test_documented_fields_per_event_are_exactly_the_emitted_ones(captured):
    lists = doc_event_lists()
    for framing, recs in captured.items():
        seen: dict[str, set[str]] = {a: set() for a in JITRUN_EVENTS}
        for rec in recs:
            obj = event_object(rec)
            fields = set(flatten(obj)) - FRAMER_FIELDS
            always, cond = lists[obj["event"]["action"]]
            missing = always - fields
            assert not missing, f"{framing}: documented as always there, but missing: {missing}\n{rec.raw[:2000]!r}"
            extra = fields - always - cond
            assert not extra, f"{framing}: sent but not documented for {obj['event']['action']}: {extra}"
            seen[obj["event"]["action"]] |= fields
        for action, (always, cond) in lists.items():
            never = (always | cond) - seen[action]
            assert not never, f"{framing}: docs/audit.md lists for {action} fields jitrun never sent: {never}"
        every = set().union(*(set(flatten(event_object(r))) for r in recs))
        assert FRAMER_FIELDS <= every, f"{framing}: truncation flags never seen"


def test_documented_field_table_is_emitted(captured):
    """Every field of the table that jitrun's events may carry was seen in some event."""
    jitrun_words = re.compile(r"\b(all|any|jitrun's|start|end|deny|policy\.error|break_glass)\b")
    for framing, recs in captured.items():
        every = set().union(*(set(flatten(event_object(r))) for r in recs))
        for name, (_, events) in doc_field_table().items():
            if jitrun_words.search(events.replace("elevate.", "")):
                assert name in every, f"{framing}: {name} is documented for jitrun's events but never sent"


def test_schema_requires_the_always_fields(schema, captured):
    """Removing any field documented as always there makes a real event invalid."""
    lists = doc_event_lists()
    done = set()
    for rec in captured["cee"]:
        obj = rec.json
        action = obj["event"]["action"]
        key = (action, obj["jitrun"].get("end_reason"), "grant" in obj["jitrun"])
        if key in done:
            continue
        done.add(key)
        assert not problems(schema, obj)
        for name in lists[action][0]:
            flat = flatten(obj)
            del flat[name]
            assert problems(schema, nest(flat)), f"{action}: the schema accepts an event without {name}"


def test_refusal_before_the_settings_are_loaded_validates(lab, world, schema):
    """Broken settings: the refusal goes to the default socket (/dev/log, missing here), so it
    is spooled, and the next good run delivers it to the lab's socket."""
    a = world.alice
    drop_spooled(lab)
    lab.write_settings(text='host = "jitlab-host"\nkill_grace = "soon"\n')
    if lab.run_as_user(a, ["/usr/bin/true"], grant=lab.mint(a, "plain")).returncode != 1:
        pytest.fail("broken settings were not refused")
    lab.write_settings()
    res = lab.run_as_user(a, ["/usr/bin/true"], grant=lab.mint(a, "plain"))
    errors = [e for e in res.events if e.action == "policy.error"]
    if len(errors) != 1 or errors[0].get("jitrun.deny_code") != "settings_error":
        pytest.fail(f"the spooled settings_error did not arrive:\n{res}")
    bad = problems(schema, errors[0].json)
    assert not bad, bad


def test_schema_rejects_what_is_not_documented(schema, captured):
    start = next(r.json for r in captured["cee"] if r.action == "elevate.start")

    def bad(mutate):
        e = copy.deepcopy(start)
        mutate(e)
        return problems(schema, e)

    assert not bad(lambda e: None)
    assert bad(lambda e: e.__setitem__("extra", 1)), "unknown top-level field accepted"
    assert bad(lambda e: e["process"].__setitem__("cmdline", "x")), "unknown nested field accepted"
    assert bad(lambda e: e["jitrun"].__setitem__("grant", {"id": "x"})), "incomplete grant accepted"
    assert bad(lambda e: e["user"].__setitem__("id", 1000)), "user.id as a number accepted"
    assert bad(lambda e: e["process"].__setitem__("pid", "1")), "process.pid as a string accepted"
    assert bad(lambda e: e["process"]["args"].append("lone \\ backslash")), "unescaped backslash accepted"
    assert bad(lambda e: e["event"].__setitem__("action", "elevate.begin")), "unknown event type accepted"
    assert bad(lambda e: e["jitrun"].__setitem__("end_reason", "exit")), "start with an end reason accepted"
    assert bad(lambda e: e["jitrun"].__setitem__("schema_version", 2)), "other schema version accepted"
