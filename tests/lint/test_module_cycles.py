"""scripts/module_cycles.py (run by `make lint`) finds import circles between a crate's
modules, and only those: checked on small throwaway crates."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("module_cycles", ROOT / "scripts" / "module_cycles.py")
mc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mc)


def crate(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "src"
    for name, text in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    return src


def found(src: Path) -> list[list[str]]:
    return [[mc.name(m) for m in comp] for comp in mc.circles(mc.graph(src))]


def test_a_circle_through_use_trees_and_paths_is_found(tmp_path):
    src = crate(tmp_path, {
        "main.rs": "mod a;\nmod b;\nmod c;\nfn main() { a::f() }\n",
        "a.rs": "use crate::{b::{g, h as _}};\npub fn f() { g() }\n",
        "b.rs": "pub fn g() { crate::c::k() }\npub fn h() {}\n",
        "c.rs": "pub fn k() { super::a::f() }\n",
    })
    assert found(src) == [["a", "b", "c"]]


def test_layering_comments_strings_and_ancestors_are_not_circles(tmp_path):
    src = crate(tmp_path, {
        "lib.rs": "pub mod exec;\npub mod util;\nfn top() { exec::run() }\n",
        "exec/mod.rs": "mod spawn;\nuse crate::util::helper;\npub fn run() { spawn::go(); helper() }\n"
                       "pub(crate) fn shared() {}\n",
        # a child using its parent's items is layering, not a circle
        "exec/spawn.rs": "use super::shared;\npub fn go() { shared() }\n",
        # paths in comments, doc links and strings do not count
        "util.rs": "/// see [`crate::exec::run`]\npub fn helper() { let _ = \"crate::exec::run\"; }\n"
                   "// crate::exec::run()\n/* crate::exec::run() */\n",
    })
    assert found(src) == []


def test_the_workspace_has_no_circle_beyond_the_known_ones():
    for src in sorted((ROOT / "crates").glob("*/src")):
        known = mc.KNOWN.get(src.parent.name, {})
        for comp in mc.circles(mc.graph(src)):
            assert tuple(mc.name(m) for m in comp) in known, f"{src.parent.name}: {comp}"
