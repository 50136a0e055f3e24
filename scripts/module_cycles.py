#!/usr/bin/env python3
"""No import circles between the modules of a crate (`make lint`).

Every `.rs` file under a crate's `src/` is a module (`mod.rs` and `lib.rs`/`main.rs` name their
directory's module). Module A depends on module B when A's code (comments and strings left
out) names a path into B: `use crate::b::…`, `crate::b::…` in an expression, `super::…`, or a
path that starts with a child module of A or (in the crate root) with a top-level module. A
path into one of A's own ancestors is not counted: a module that declares its children and
whose children use its helpers is ordinary layering, not a circle between peers.

The strongly connected components of that graph with more than one module are circles; each
is printed with one path around it. Exit status 1 if any circle is found that KNOWN does not
list, or if a KNOWN circle is gone (so that the list cannot rot).

    python3 scripts/module_cycles.py            # every crate under crates/
    python3 scripts/module_cycles.py --graph jitrun   # the dependency edges of one crate
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Circles known and left for later, per crate, as sorted module lists, each with why (none now:
# add one only with its reason). An entry
# whose circle is gone fails the check: remove it then.
KNOWN: dict[str, dict[tuple[str, ...], str]] = {}

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(text: str) -> str:
    """The source without comments, string and char literals (raw strings included)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif (m := re.match(r'b?r(#*)"', text[i:])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            i = n if j < 0 else j + len(end)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and (m := re.match(r"'(\\.[^']*|[^\\'])'", text[i:])):
            i += m.end()
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def modules(src: Path) -> dict[tuple[str, ...], Path]:
    """Module path (() for the crate root) -> file."""
    mods: dict[tuple[str, ...], Path] = {}
    for p in src.rglob("*.rs"):
        rel = p.relative_to(src).with_suffix("").parts
        if rel in (("lib",), ("main",)):
            key: tuple[str, ...] = ()
        elif rel[-1] == "mod":
            key = rel[:-1]
        else:
            key = rel
        if rel[:1] == ("bin",):
            continue  # separate binaries are crates of their own
        mods.setdefault(key, p)
    # Only files reachable as modules (not tests/ fixtures or examples under src/).
    return mods


def use_paths(code: str) -> list[list[str]]:
    """Every path of every `use` tree, as lists of segments."""
    paths: list[list[str]] = []
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        paths.extend(expand(m.group(1).replace("\n", " ")))
    return paths


def expand(tree: str) -> list[list[str]]:
    tree = tree.strip()
    depth, split = 0, None
    for i, c in enumerate(tree):
        if c == "{":
            if depth == 0:
                split = i
            depth += 1
        elif c == "}":
            depth -= 1
    if split is None:
        head = tree.split(" as ")[0].strip()
        return [[s for s in head.split("::") if s]]
    prefix = [s for s in tree[:split].split("::") if s]
    inner = tree[split + 1: tree.rfind("}")]
    parts, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    out = []
    for part in parts:
        if part.strip():
            out.extend(prefix + sub for sub in expand(part))
    return out


def resolve(segments: list[str], here: tuple[str, ...], mods: dict) -> tuple[str, ...] | None:
    """The longest module prefix `segments` names, seen from module `here`."""
    if not segments:
        return None
    base: tuple[str, ...]
    rest = list(segments)
    if rest[0] == "crate":
        base, rest = (), rest[1:]
    elif rest[0] == "self":
        base, rest = here, rest[1:]
    elif rest[0] == "super":
        base = here
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    elif here + (rest[0],) in mods:
        base = here
    else:
        return None  # another crate, std, or a name in scope
    found = None
    cur = base
    if base != here or segments[0] in ("super", "crate"):
        found = base
    for s in rest:
        if cur + (s,) in mods:
            cur = cur + (s,)
            found = cur
        else:
            break
    return found


def graph(src: Path) -> dict[tuple[str, ...], set[tuple[str, ...]]]:
    mods = modules(src)
    edges: dict[tuple[str, ...], set[tuple[str, ...]]] = {m: set() for m in mods}
    for here, path in mods.items():
        code = strip(path.read_text())
        found = use_paths(code)
        for m in re.finditer(rf"(?<![A-Za-z0-9_:])((?:{IDENT}::)+){IDENT}", code):
            found.append(m.group(1).split("::")[:-1])
        for segs in found:
            target = resolve(segs, here, mods)
            if target is None or target == here or here[: len(target)] == target:
                continue  # itself or an ancestor
            edges[here].add(target)
    return edges


def circles(edges: dict) -> list[list[tuple[str, ...]]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict = {}
    low: dict = {}
    stack: list = []
    on: set = set()
    out: list = []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def name(m: tuple[str, ...]) -> str:
    return "::".join(m) or "(crate root)"


def path_around(comp: list, edges: dict) -> str:
    """One circle through the component's first module, found breadth-first."""
    start = comp[0]
    members = set(comp)
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges[v]):
            if w == start:
                chain = [v]
                while prev[chain[-1]] is not None:
                    chain.append(prev[chain[-1]])
                return " -> ".join(name(x) for x in [*reversed(chain), start])
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return ", ".join(name(x) for x in comp)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--graph", help="print the module dependencies of this crate")
    args = ap.parse_args()
    crates = sorted(p.parent for p in (REPO / "crates").glob("*/src"))
    if args.graph:
        edges = graph(REPO / "crates" / args.graph / "src")
        for m in sorted(edges):
            print(f"{name(m)} -> {', '.join(name(t) for t in sorted(edges[m])) or '-'}")
        return 0
    failed = False
    for crate in crates:
        edges = graph(crate / "src")
        known = KNOWN.get(crate.name, {})
        seen = set()
        for comp in circles(edges):
            key = tuple(name(m) for m in comp)
            seen.add(key)
            if key in known:
                print(f"{crate.name}: known circle ({known[key]}): {path_around(comp, edges)}")
                continue
            failed = True
            print(f"{crate.name}: import circle: {path_around(comp, edges)}", file=sys.stderr)
        for key in known:
            if key not in seen:
                failed = True
                print(f"{crate.name}: the known circle {', '.join(key)} is gone: remove it from KNOWN "
                      "in scripts/module_cycles.py", file=sys.stderr)
    if not failed:
        print(f"module_cycles: no import circle in {len(crates)} crates"
              + (" beyond the known ones" if any(KNOWN.values()) else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
