"""The RPM packages (`make rpm`), checked with Debian's rpm: their file list, modes and config
flags, their scriptlets, and an installation into a throwaway root (`rpm --root`, without
scriptlets: the root has no shell), then its removal."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RPM_DIR = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "generate-rpm"


def rpm_file(name: str) -> Path:
    found = sorted(RPM_DIR.glob(f"{name}-[0-9]*.rpm"), key=lambda p: p.stat().st_mtime)
    if not found:
        pytest.fail(f"no {RPM_DIR}/{name}-*.rpm: run `make rpm` first")
    return found[-1]


def rpm(*args) -> str:
    if not shutil.which("rpm"):
        pytest.fail("rpm not found (make deps installs Debian's rpm package)")
    p = subprocess.run(["rpm", *map(str, args)], capture_output=True, text=True)
    assert p.returncode == 0, f"rpm {args}: {p.stdout}{p.stderr}"
    return p.stdout


def files(pkg: Path) -> dict[str, tuple[str, str, str]]:
    """path -> (permissions, owner:group, file flags)"""
    out = rpm("-qp", "--qf", "[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} <%{FILEFLAGS:fflags}> %{FILENAMES}\n]",
              pkg)
    table = {}
    for line in out.splitlines():
        perms, owner, rest = line.split(" ", 2)
        flags, path = rest.split("> ", 1)
        table[path] = (perms, owner, flags.lstrip("<"))
    return table


def test_jitrun_rpm_files_modes_and_config():
    pkg = rpm_file("jitrun")
    t = files(pkg)
    assert t["/usr/bin/jitrun"][:2] == ("-rwsr-xr-x", "root:root"), t["/usr/bin/jitrun"]
    assert t["/usr/bin/jitctl"][0] == "-rwxr-xr-x"
    for conf in ("/etc/jitrun/jitrun.toml", "/etc/pam.d/jitrun"):
        assert "c" in t[conf][2] and "n" in t[conf][2], (conf, t[conf])  # %config(noreplace)
    for path in ("/usr/share/man/man1/jitrun.1.gz", "/usr/share/man/man5/jitrun-policy.5.gz",
                 "/usr/share/man/man1/jitctl-policy-pack.1.gz", "/usr/share/bash-completion/completions/jitrun",
                 "/usr/lib/systemd/system/jitrun-revocations-sync.timer", "/usr/lib/tmpfiles.d/jitrun.conf",
                 "/usr/lib/systemd/system/jitrun-sessions-prune.timer",
                 "/usr/lib/systemd/system/jitrun-sessions-prune.service",
                 "/usr/lib/systemd/system/jitrun-revocations-watch.service",
                 "/usr/share/licenses/jitrun/copyright"):
        assert path in t, f"{path} not in {sorted(t)}"
    assert rpm("-qlp", pkg).split() == sorted(t)
    # libpam is loaded with dlopen (not linked): the PAM library is required by name
    assert "pam" in rpm("-qp", "--requires", pkg).split(), rpm("-qp", "--requires", pkg)
    scripts = rpm("-qp", "--scripts", pkg)
    assert "install -d -m 0700 -o root -g root /var/lib/jitrun" in scripts, scripts
    assert "install -d -m 0700 -o root -g root /var/log/jitrun/sessions" in scripts, scripts
    # The PAM service uses the RPM distributions' stack, not Debian's common-*.
    assert "@include" not in (ROOT / "packaging/rpm/pam.d/jitrun").read_text()


def test_jitbroker_rpm_creates_its_user_before_its_files():
    pkg = rpm_file("jitbroker")
    t = files(pkg)
    assert t["/etc/jitbroker/broker.toml"][:2] == ("-rw-r-----", "root:jitbroker"), t
    scripts = rpm("-qp", "--scripts", pkg)
    pre = scripts.split("preinstall scriptlet", 1)[1].split("scriptlet", 1)[0]
    assert "useradd --system" in pre, scripts
    # Its man pages (generated from its clap definitions by jit-docgen), marked %doc.
    for page in ("jitbroker.1.gz", "jitbroker-serve.1.gz", "jitbroker-host-add.1.gz"):
        path = f"/usr/share/man/man1/{page}"
        assert path in t and "d" in t[path][2], (path, sorted(t))


@pytest.mark.skipif(os.geteuid() != 0, reason="rpm --root sets root ownership and setuid bits only as root")
def test_install_into_a_throwaway_root_and_erase(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    rpm("--root", root, "--initdb")
    rpm("--root", root, "-i", "--nodeps", "--noscripts", rpm_file("jitrun"))
    st = os.stat(root / "usr/bin/jitrun")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o4755)
    assert (root / "etc/jitrun/jitrun.toml").read_text().startswith("# /etc/jitrun/jitrun.toml")
    assert "jitrun-" in rpm("--root", root, "-qa")
    # The installed binary is the one that was built.
    out = subprocess.run([root / "usr/bin/jitrun", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("jitrun "), out
    rpm("--root", root, "-e", "--nodeps", "--noscripts", "jitrun")
    assert not (root / "usr/bin/jitrun").exists()
    assert rpm("--root", root, "-qa").strip() == ""
