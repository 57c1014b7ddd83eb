#!/usr/bin/env python3
"""Fails when the library's stages depend on each other in a cycle.

A stage is a top-level module of the library: a folder under src/ (src/data/, src/model/, …),
or udfs/ (mounted as `crate::udfs`). Stage A depends on stage B when code in A (comments
left out) names `crate::B`. The dependency graph must be acyclic, so that each stage can be
read, tested and changed with only the stages below it in mind (see ARCHITECTURE.md). The
binary (src/main.rs, src/cli/) sits on top and is not checked.

Usage: ci/check-cycles.py [REPO_ROOT]   (prints the graph; exit 1 on a cycle)
"""
import re
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
BINARY = {"main.rs", "cli"}


def stage_of(path: Path) -> str:
    rel = path.relative_to(root)
    if rel.parts[0] == "udfs":
        return "udfs"
    first = rel.parts[1]
    return first[:-3] if first.endswith(".rs") else first


def code(text: str) -> str:
    """The text without comments, string literals and char literals."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c == "r" and re.match(r'r#*"', text[i:]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            i = n if end < 0 else end + 1 + len(hashes)
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif c == "'" and (text.startswith("'\\", i) or text[i + 2 : i + 3] == "'"):
            end = text.find("'", i + 2 if text[i + 1] != "\\" else i + 3)
            i = n if end < 0 else end + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


files = [p for p in (root / "src").rglob("*.rs") if p.relative_to(root / "src").parts[0] not in BINARY]
files = [p for p in files if p.name != "lib.rs" or p.parent != root / "src"]
files += list((root / "udfs").rglob("*.rs"))

graph: dict[str, set[str]] = {}
where: dict[tuple[str, str], str] = {}
for f in files:
    a = stage_of(f)
    graph.setdefault(a, set())
    for b in re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", code(f.read_text())):
        if b != a:
            graph[a].add(b)
            where.setdefault((a, b), str(f.relative_to(root)))

for a in sorted(graph):
    print(f"{a} -> {', '.join(sorted(graph[a])) or '(nothing)'}")

# Depth-first search for a back edge.
WHITE, GREY, BLACK = 0, 1, 2
color = {s: WHITE for s in graph}
stack: list[str] = []


def visit(s: str) -> list[str] | None:
    color[s] = GREY
    stack.append(s)
    for t in sorted(graph.get(s, ())):
        if color.get(t, BLACK) == GREY:
            return stack[stack.index(t):] + [t]
        if color.get(t) == WHITE:
            found = visit(t)
            if found:
                return found
    stack.pop()
    color[s] = BLACK
    return None


for s in sorted(graph):
    if color[s] == WHITE:
        cycle = visit(s)
        if cycle:
            print("\nmodule cycle: " + " -> ".join(cycle), file=sys.stderr)
            for a, b in zip(cycle, cycle[1:]):
                print(f"  {a} -> {b}: e.g. {where[(a, b)]}", file=sys.stderr)
            print("move the shared piece to the lower stage, or invert the call", file=sys.stderr)
            sys.exit(1)
print("no module cycles")
