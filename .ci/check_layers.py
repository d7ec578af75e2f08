"""Checks that src/ depends one way: each file may use its own layer and the layers below it, and the
file-level import graph has no cycle. Layers, bottom to top: shared basics, state, bridge, asgi, server.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SRC = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "src"
LAYERS = {"sync": 0, "errors": 0, "config": 0, "state": 1, "bridge": 2, "asgi": 3, "server": 4, "lib": 5}
USE = re.compile(r"\buse\s+((?:crate|super)(?:::\w+)*)(?:::\{([^;]*)\})?(?:::\w+)?\s*(?:as\s+\w+\s*)?;", re.S)
INLINE = re.compile(r"\b((?:crate)(?:::\w+)+)")


def module_of(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(SRC).with_suffix("").parts
    if parts[-1] == "mod":
        parts = parts[:-1]
    return parts or ("lib",)


def modules() -> dict[tuple[str, ...], Path]:
    return {module_of(p): p for p in SRC.rglob("*.rs")}


def resolve(segments: list[str], here: tuple[str, ...], known: dict) -> tuple[str, ...]:
    """The module file a `crate::`/`super::` path lands in (its longest prefix that is a file)."""
    target: tuple[str, ...] = () if segments[0] == "crate" else here[:-1]
    rest = segments[1:]
    while rest and rest[0] == "super":
        target, rest = target[:-1], rest[1:]
    for seg in rest:
        if target + (seg,) not in known:
            break
        target = target + (seg,)
    return target or ("lib",)


def edges(known: dict[tuple[str, ...], Path]) -> dict[tuple[str, ...], set[tuple[str, ...]]]:
    graph: dict[tuple[str, ...], set[tuple[str, ...]]] = {m: set() for m in known}
    for mod, path in known.items():
        text = re.sub(r"//[^\n]*", "", path.read_text())
        found: list[list[str]] = []
        for m in USE.finditer(text):
            head = m.group(1).split("::")
            items = m.group(2)
            if items:
                for item in items.split(","):
                    first = item.strip().split("::")[0].strip("{} \n")
                    found.append(head + ([first] if first and first != "self" else []))
            else:
                found.append(head + m.group(0).split(m.group(1), 1)[1].strip(":; ").split("::")[:1])
        for m in INLINE.finditer(text):
            found.append(m.group(1).split("::"))
        for segs in found:
            target = resolve(segs, mod, known)
            if target != mod and target in known:
                graph[mod].add(target)
    return graph


def layer(mod: tuple[str, ...]) -> int:
    return LAYERS.get(mod[0], 0)


def find_cycle(graph: dict[tuple[str, ...], set[tuple[str, ...]]]) -> list[tuple[str, ...]] | None:
    state: dict[tuple[str, ...], int] = {}
    stack: list[tuple[str, ...]] = []

    def visit(node: tuple[str, ...]) -> list[tuple[str, ...]] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def main() -> int:
    known = modules()
    graph = edges(known)
    problems = [
        f"{'::'.join(a)} (layer {layer(a)}) uses {'::'.join(b)} (layer {layer(b)})"
        for a, targets in sorted(graph.items())
        for b in sorted(targets)
        if layer(b) > layer(a)
    ]
    cycle = find_cycle(graph)
    if cycle:
        problems.append("import cycle: " + " -> ".join("::".join(m) for m in cycle))
    for p in problems:
        print(p)
    n_edges = sum(len(t) for t in graph.values())
    print(f"layers: {len(graph)} files, {n_edges} imports, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
