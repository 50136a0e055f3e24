"""The rsyslog configuration of docs/audit.md, run by a real rsyslogd, turns both framings
into JSON that matches the event exactly.

The configuration block is taken from docs/audit.md itself (so the documentation stays
true), pointed at a private socket and output file, and fed the datagrams of
`cargo run -q -p jit-audit --example render`. Needs rsyslogd (Debian: apt-get install rsyslog).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from rsyslog import flatten  # noqa: E402  (one definition for every test that reads events)

ROOT = Path(__file__).resolve().parents[2]
RSYSLOGD = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None)
SD_ALIASES = {"process.thread.capabilities.effective": "process.thread.caps.effective"}

pytestmark = pytest.mark.skipif(RSYSLOGD is None and not os.environ.get("CI"), reason="rsyslogd is not installed (apt-get install rsyslog)")


def documented_config():
    doc = (ROOT / "docs" / "audit.md").read_text()
    m = re.search(r"```\n(# /etc/rsyslog.d/30-jitrun.conf\n.*?)```", doc, re.S)
    assert m, "docs/audit.md has no rsyslog configuration block"
    return m.group(1)




def wait_for(check, what, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture()
def rsyslog(tmp_path):
    sock = tmp_path / "log.sock"
    out = tmp_path / "audit.json"
    conf = documented_config()
    system_socket = ('module(load="imuxsock" SysSock.UseSpecialParser="off" SysSock.Annotate="on" '
                     'SysSock.ParseTrusted="on")')
    assert system_socket in conf
    # Same settings, on a private socket instead of the system's /dev/log.
    conf = conf.replace(
        system_socket,
        'module(load="imuxsock" SysSock.Use="off")\n'
        f'input(type="imuxsock" Socket="{sock}" UseSpecialParser="off" Annotate="on" ParseTrusted="on")',
    )
    assert "/var/log/jitrun/audit.json" in conf and "/var/log/jitrun/forged.json" in conf
    conf = conf.replace("/var/log/jitrun/audit.json", str(out))
    conf = conf.replace("/var/log/jitrun/forged.json", str(tmp_path / "forged.json"))
    conf = f'global(workDirectory="{tmp_path}")\n' + conf
    conf_file = tmp_path / "rsyslog.conf"
    conf_file.write_text(conf)
    check = subprocess.run([RSYSLOGD, "-N1", "-f", str(conf_file)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log = open(tmp_path / "rsyslogd.log", "w")
    proc = subprocess.Popen(
        [RSYSLOGD, "-n", "-f", str(conf_file), "-i", str(tmp_path / "rsyslogd.pid")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: sock.exists(), "rsyslogd's socket")
        yield sock, out
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def samples():
    out = subprocess.run(
        ["cargo", "run", "-q", "-p", "jit-audit", "--example", "render"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_documented_rsyslog_config_yields_the_events(rsyslog):
    sock, out = rsyslog
    rows = samples()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect(str(sock))
    for row in rows:
        s.send(row["datagram"].encode())
    s.close()

    def complete():
        return out.exists() and out.read_text().count("\n") >= len(rows)

    wait_for(complete, f"{len(rows)} lines in {out}")
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(got) == len(rows)

    cee_events = {}
    for row, parsed in zip(rows, got):
        if row["framing"] == "cee":
            event = json.loads(row["datagram"].split(": @cee:", 1)[1])
            assert parsed == event, row["name"]  # mmjsonparse saw the whole, exact object
            cee_events[row["name"]] = event
    for row, parsed in zip(rows, got):
        if row["framing"] != "rfc5424":
            continue
        sd = parsed["rfc5424-sd"]["jitrun@32473"]
        event = cee_events[row["name"]]
        assert sd["event.action"] == event["event"]["action"]
        if "truncated" in row["datagram"]:
            assert sd["jitrun.args_truncated"] == "true"
            continue  # each framing is cut to fit its own size
        fields = flatten(event)
        assert len(sd) == len(fields), row["name"]
        for name, value in fields.items():
            text = sd[SD_ALIASES.get(name, name)]
            if isinstance(value, list):
                assert json.loads(text) == value, (row["name"], name)
            elif isinstance(value, bool):
                assert text == ("true" if value else "false"), (row["name"], name)
            else:
                assert text == str(value), (row["name"], name)
