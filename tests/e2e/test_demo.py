"""`make demo` keeps working: run scripts/demo.py unattended, as CI would."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_unattended_and_cleans_up(lab):
    env = dict(os.environ, CI="true")
    p = subprocess.Popen([sys.executable, str(REPO / "scripts" / "demo.py")], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        out, err = p.communicate(timeout=600)
    except BaseException:
        p.terminate()  # the demo cleans up on SIGTERM
        p.communicate(timeout=60)
        raise
    assert p.returncode == 0, out[-4000:] + err[-4000:]
    assert "cap_net_raw" in out  # CapEff decoded
    assert "raw socket: opened" in out
    assert '"deny_code": "grant_rule_mismatch"' in out
    assert '"end_reason": "expired"' in out
    assert "The host is as we found it" in out
