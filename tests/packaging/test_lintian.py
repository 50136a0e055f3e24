"""The .deb packages (`make deb`) pass Debian's own checks, and their man pages are sound.

* lintian reports no error and no warning on either package; what it still flags is
  overridden in the package itself (`usr/share/lintian/overrides/PACKAGE`), each override under
  a comment that says why, and no override is stale (lintian's `unused-override`);
* every man page either package ships passes `mandoc -T lint` at the warning level (a real
  date in `.TH`, no broken macros), and its date is the one `make deb` gave (the last commit's);
* jitbroker's man pages (generated from its clap definitions) list every subcommand and
  option `jitbroker --help` shows;
* the Debian changelog's version is the packages' version.

Reads the packages only (`dpkg-deb`); nothing is installed. Needs lintian and mandoc
(`make deps`).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEB_DIR = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debian"
PACKAGES = ("jitrun", "jitbroker")


def deb(name: str) -> Path:
    found = sorted(DEB_DIR.glob(f"{name}_*.deb"), key=lambda p: p.stat().st_mtime)
    if not found:
        pytest.fail(f"no {DEB_DIR}/{name}_*.deb: run `make deb` first")
    return found[-1]


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} not found (make deps installs it)")
    return path


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory) -> dict[str, Path]:
    """Each package's files, extracted (not installed) with dpkg-deb."""
    out = {}
    for name in PACKAGES:
        d = tmp_path_factory.mktemp(name)
        p = subprocess.run(["dpkg-deb", "-x", str(deb(name)), str(d)], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        out[name] = d
    return out


def field(name: str, key: str) -> str:
    p = subprocess.run(["dpkg-deb", "-f", str(deb(name)), key], capture_output=True, text=True, check=True)
    return p.stdout.strip()


# ---- lintian -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lintian_tags() -> dict[str, list[str]]:
    """lintian's findings per package, info level and up, overridden ones shown as `O:`."""
    out = {}
    for name in PACKAGES:
        p = subprocess.run([tool("lintian"), "--display-info", "--show-overrides", "--no-tag-display-limit",
                            str(deb(name))], capture_output=True, text=True, timeout=600)
        # lintian exits non-zero when it finds errors; its findings are what is checked.
        assert "internal error" not in p.stderr.lower(), p.stderr
        out[name] = p.stdout.splitlines()
    return out


@pytest.mark.parametrize("name", PACKAGES)
def test_lintian_finds_no_error_and_no_warning(lintian_tags, name):
    bad = [line for line in lintian_tags[name] if line.startswith(("E:", "W:"))]
    assert not bad, f"lintian on {deb(name).name}:\n" + "\n".join(bad)


@pytest.mark.parametrize("name", PACKAGES)
def test_lintian_overrides_are_used(lintian_tags, name):
    stale = [line for line in lintian_tags[name] if re.search(r"\b(unused|mismatched)-override\b", line)]
    assert not stale, "overrides lintian no longer needs (remove them):\n" + "\n".join(stale)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_lintian_override_says_why(unpacked, name):
    overrides = unpacked[name] / "usr/share/lintian/overrides" / name
    if not overrides.exists():
        return
    comment = False
    for line in overrides.read_text().splitlines():
        if line.startswith("#"):
            comment = comment or len(line.lstrip("# ").split()) >= 3
            continue
        if not line.strip():
            comment = False
            continue
        assert comment, f"{overrides.name}: override {line!r} has no comment above it saying why"


def test_the_setuid_helper_is_overridden_for_exactly_its_path(unpacked):
    text = (unpacked["jitrun"] / "usr/share/lintian/overrides/jitrun").read_text()
    tags = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert "jitrun: elevated-privileges 4755 0/0 [usr/bin/jitrun]" in tags, tags


# ---- man pages ---------------------------------------------------------------------------

def man_pages(root: Path) -> list[Path]:
    return sorted((root / "usr/share/man").rglob("*.gz"))


def test_both_packages_ship_man_pages_for_their_programs(unpacked):
    names = {p.name for name in PACKAGES for p in man_pages(unpacked[name])}
    for page in ("jitrun.1.gz", "jitctl.1.gz", "jitrun.toml.5.gz", "jitrun-policy.5.gz"):
        assert page in {p.name for p in man_pages(unpacked["jitrun"])}, page
    for page in ("jitbroker.1.gz", "jitbroker-serve.1.gz", "jitbroker-host-add.1.gz", "jitbroker-audit-verify.1.gz"):
        assert page in {p.name for p in man_pages(unpacked["jitbroker"])}, page
    assert len(names) == sum(len(man_pages(unpacked[n])) for n in PACKAGES), "a page is in both packages"


def test_every_man_page_passes_mandoc_lint(unpacked, tmp_path):
    mandoc = tool("mandoc")
    problems = []
    for name in PACKAGES:
        for page in man_pages(unpacked[name]):
            src = tmp_path / page.name.removesuffix(".gz")
            src.write_bytes(gzip.decompress(page.read_bytes()))
            p = subprocess.run([mandoc, "-T", "lint", "-W", "warning", str(src)], capture_output=True, text=True)
            if p.returncode != 0 or p.stdout.strip() or p.stderr.strip():
                problems.append(f"{name}: {page.name}:\n{p.stdout}{p.stderr}")
    assert not problems, "\n".join(problems)


def th_date(page: Path) -> str:
    text = gzip.decompress(page.read_bytes()).decode()
    th = next(line for line in text.splitlines() if line.startswith(".TH "))
    # .TH title section date source manual (quoted or not)
    args = re.findall(r'"([^"]*)"|(\S+)', th[4:])
    return [a or b for a, b in args][2]


def last_commit_date() -> str | None:
    """The last commit's date (UTC), as `make deb` dates the generated pages."""
    p = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0 or not p.stdout.strip():
        return None
    return datetime.fromtimestamp(int(p.stdout), timezone.utc).date().isoformat()


def test_generated_man_pages_carry_a_real_date(unpacked):
    generated = [p for name in PACKAGES for p in man_pages(unpacked[name])
                 if p.name.startswith(("jitctl", "jitbroker"))]
    assert generated
    dates = {th_date(p) for p in generated}
    assert len(dates) == 1, dates
    [date] = dates
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", date), date
    # SOURCE_DATE_EPOCH = the last commit: the same commit gives the same pages.
    expected = last_commit_date()
    if "SOURCE_DATE_EPOCH" not in os.environ and expected:
        assert date == expected, f"pages dated {date}, last commit {expected}: run `make deb` again"


def page_text(root: Path, page: str) -> str:
    return gzip.decompress((root / "usr/share/man/man1" / page).read_bytes()).decode().replace("\\-", "-")


def help_text(binary: Path, *args: str) -> str:
    p = subprocess.run([str(binary), *args, "--help"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def commands_and_options(help_out: str) -> tuple[list[str], list[str]]:
    section, commands, options = None, [], []
    for line in help_out.splitlines():
        if re.match(r"^[A-Z][a-z]+:$", line):
            section = line[:-1]
            continue
        m = re.match(r"^  (\S+)", line)
        if not m:
            continue
        if section == "Commands" and m.group(1) != "help":
            commands.append(m.group(1))
        elif section == "Options":
            options += re.findall(r"--[a-z][a-z-]*", line.split("  ", 2)[1] if "  " in line[2:] else line)
    return commands, options


def test_jitbroker_man_pages_match_its_help(unpacked):
    root = unpacked["jitbroker"]
    binary = root / "usr/bin/jitbroker"

    def walk(path: list[str]):
        out = help_text(binary, *path)
        commands, options = commands_and_options(out)
        page = "-".join(["jitbroker", *path]) + ".1.gz"
        text = page_text(root, page)
        for opt in options:
            assert opt in text, f"{opt} of `jitbroker {' '.join(path)} --help` not in {page}"
        for c in commands:
            assert c in text, f"subcommand {c} of `jitbroker {' '.join(path)}` not in {page}"
            walk([*path, c])

    walk([])


# ---- changelog ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", PACKAGES)
def test_changelog_names_the_package_version(unpacked, name):
    changelog = unpacked[name] / "usr/share/doc" / name / "changelog.Debian.gz"
    first = gzip.decompress(changelog.read_bytes()).decode().splitlines()[0]
    m = re.match(r"^jitrun \(([^)]+)\) \S+; urgency=\w+$", first)
    assert m, first
    assert m.group(1) == field(name, "Version"), (first, field(name, "Version"))
