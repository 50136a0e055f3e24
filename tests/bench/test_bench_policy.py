"""`make bench` is not part of `make test`, but the policies it generates must stay loadable:
a policy rule change (say, a name added to the never-kept environment list) must not break
the benchmark silently. Checked with `jitctl policy check`, exactly as jitrun loads policy."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import bench_policy  # noqa: E402

JITCTL = ROOT / "target" / "debug" / "jitctl"
BENCH_RULE = {"name": "bench-grant", "users": ["benchuser"], "commands": ["/usr/bin/true"]}


@pytest.mark.parametrize("rules", [10, 1000, 3000])
def test_generated_policy_loads(tmp_path, rules):
    files = bench_policy.generate(rules, BENCH_RULE, "benchuser", "bench-host", bench_group="benchgrp")
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    paths = [str(tmp_path / "policy.toml")] + ([str(tmp_path / "policy.d")] if (tmp_path / "policy.d").exists() else [])
    res = subprocess.run([str(JITCTL), "policy", "check", *paths], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"ok: {rules} rules" in res.stdout, res.stdout
