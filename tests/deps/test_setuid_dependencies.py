"""The setuid binary's dependency tree stays small and offline: no async runtime, no HTTP,
no TLS, no network or plugin crates (docs/architecture.md: jitrun never talks to a network)."""

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "tokio", "async-std", "smol", "futures", "mio", "hyper", "reqwest", "ureq", "h2", "http",
    "axum", "tower", "rustls", "openssl", "openssl-sys", "native-tls", "ring", "curl", "isahc",
    "libloading", "dlopen", "socket2",
}
# A budget, not a target: raising it is a decision to review, not a side effect.
MAX_CRATES = 60


def jitrun_dependencies() -> set[str]:
    out = subprocess.run(
        ["cargo", "tree", "-p", "jitrun", "-e", "normal", "--prefix", "none", "--offline"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_no_network_async_tls_or_plugin_crates():
    deps = jitrun_dependencies()
    assert "jitrun" in deps and "jit-grant" in deps  # the listing really is jitrun's tree
    assert not deps & FORBIDDEN, f"forbidden crates in jitrun's tree: {sorted(deps & FORBIDDEN)}"


def test_dependency_count_stays_within_budget():
    deps = jitrun_dependencies()
    assert len(deps) <= MAX_CRATES, f"{len(deps)} crates in jitrun's tree: {sorted(deps)}"


def test_setuid_binary_carries_no_policy_test_case_code():
    """`[[test]]` cases are jitctl's: the loader jitrun runs passes those tables over, so the
    code that reads and runs them (jit_policy::test_case) must not be linked into jitrun."""
    subprocess.run(["cargo", "build", "-p", "jitrun", "--offline", "--quiet"], cwd=ROOT, check=True)
    target = Path(json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout)["target_directory"])
    symbols = subprocess.run(["nm", "-C", str(target / "debug" / "jitrun")],
                             capture_output=True, text=True, check=True).stdout
    # The control: the policy loader is there, under its own name.
    assert "jit_policy::rule::parse_rule" in symbols
    linked = sorted({line.split(" ", 2)[-1] for line in symbols.splitlines() if "jit_policy::test_case" in line})
    assert not linked, f"jitrun links [[test]] code: {linked[:10]}"
