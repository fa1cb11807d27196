#!/usr/bin/env python3
"""Fails on an upward import between the layers of src/ or on an import circle.

Layers, ground first (README, "How the code is laid out"): a module may import from its own layer
and the layers before it, never from a later one. Circles are looked for between files (no two
files import each other, directly or round a loop) and between the modules one level below a
layer (`sources::kafka` and `sources::simulator` must not need each other).

A `use` inside a `#[cfg(test)]` block does not count: a file's own tests may reach anywhere.
Re-exports (`pub use`) are followed to the file that defines the item, and are not imports of
their own: a `mod.rs` that re-exports its children does not depend on them.

    python3 scripts/check_layers.py          # prints the import graph's problems, exit 1 if any
    python3 scripts/check_layers.py --edges  # also prints every file-to-file import
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

LAYERS = [
    ["hashing", "progress"],  # helpers with no knowledge of the domain
    ["events"],
    ["store"],
    ["sinks", "sources"],
    ["curate"],
    ["train"],
    ["finetune"],
    ["analysis"],
    ["pipeline"],
    ["bench"],
    ["cli", "main"],
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}

SRC = Path(__file__).resolve().parent.parent / "src"


def module_of(path: Path) -> tuple[str, ...]:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    if parts == ["lib"]:
        return ()
    return tuple(parts)


def strip_comments_and_tests(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    # Drop `#[cfg(test)]` items: find the block that follows and skip to its closing brace.
    out, i = [], 0
    for match in re.finditer(r"#\[cfg\(test\)\]", text):
        if match.start() < i:
            continue
        out.append(text[i : match.start()])
        j = text.find("{", match.end())
        semicolon = text.find(";", match.end())
        if j < 0 or (0 <= semicolon < j):
            i = semicolon + 1
            continue
        depth = 0
        for k in range(j, len(text)):
            depth += text[k] == "{"
            depth -= text[k] == "}"
            if depth == 0:
                i = k + 1
                break
        else:
            i = len(text)
    out.append(text[i:])
    return "".join(out)


def expand_use_tree(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` → [`a::b`, `a::c::d`, `a::c::e`]."""
    tree = re.sub(r"\s+", "", tree)
    depth, split_at = 0, None
    for k, ch in enumerate(tree):
        if ch == "{":
            if depth == 0 and split_at is None:
                split_at = k
            depth += 1
        elif ch == "}":
            depth -= 1
    if split_at is None:
        return [re.sub(r"\bas\w+$", "", tree)]
    prefix, inner = tree[:split_at], tree[split_at + 1 : -1]
    pieces, depth, start = [], 0, 0
    for k, ch in enumerate(inner):
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            pieces.append(inner[start:k])
            start = k + 1
    pieces.append(inner[start:])
    paths = []
    for piece in pieces:
        if piece:
            paths.extend(prefix + p for p in expand_use_tree(piece))
    return paths


class Crate:
    def __init__(self) -> None:
        self.files: dict[tuple[str, ...], Path] = {}
        self.texts: dict[tuple[str, ...], str] = {}
        for path in sorted(SRC.rglob("*.rs")):
            module = module_of(path)
            if path.name == "main.rs":
                module = ("main",)
            self.files[module] = path
            self.texts[module] = strip_comments_and_tests(path.read_text())
        self.reexports: dict[tuple[str, ...], dict[str, list[str]]] = {}
        self.globs: dict[tuple[str, ...], list[list[str]]] = {}
        for module, text in self.texts.items():
            named, globbed = {}, []
            for tree in re.findall(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", text):
                for path in expand_use_tree(tree):
                    segments = self.absolute(module, path.split("::"))
                    if segments is None:
                        continue
                    if segments[-1] == "*":
                        globbed.append(segments[:-1])
                    else:
                        named[segments[-1]] = segments
            self.reexports[module], self.globs[module] = named, globbed

    def absolute(self, module: tuple[str, ...], segments: list[str]) -> list[str] | None:
        """A path as written in `module`, made absolute from the crate root; None if external."""
        segments = [s for s in segments if s]
        if not segments:
            return None
        head = segments[0]
        if head in ("crate", "social_reward"):
            return segments[1:]
        if head == "self":
            return list(module) + segments[1:]
        if head == "super":
            base = list(module)
            while segments and segments[0] == "super":
                base = base[:-1]
                segments = segments[1:]
            return base + segments
        if module == ("main",) and head in self.root_children():
            return segments
        if module and (tuple(module) + (head,)) in self.files:
            # `use child::Item` inside a parent module.
            return list(module) + segments
        return None

    def root_children(self) -> set[str]:
        return {m[0] for m in self.files if len(m) == 1}

    def resolve(self, segments: list[str], seen: int = 0) -> tuple[str, ...] | None:
        """The file that defines what an absolute path names."""
        if seen > 8:
            return None
        best = None
        for k in range(len(segments), -1, -1):
            if tuple(segments[:k]) in self.files:
                best = k
                break
        if best is None:
            return None
        module, rest = tuple(segments[:best]), segments[best:]
        if not rest or rest[0] == "self":
            return module
        item = rest[0]
        if item in self.reexports.get(module, {}):
            target = self.reexports[module][item]
            return self.resolve(target + rest[1:], seen + 1) or module
        if re.search(rf"\b(?:fn|struct|enum|trait|type|const|static|macro_rules!)\s+{re.escape(item)}\b",
                     self.texts[module]):
            return module
        for glob in self.globs.get(module, []):
            found = self.resolve(glob + rest, seen + 1)
            if found is not None and found != tuple(glob):
                return found
        return module

    def imports(self) -> dict[tuple[str, ...], set[tuple[str, ...]]]:
        edges: dict[tuple[str, ...], set[tuple[str, ...]]] = defaultdict(set)
        for module, text in self.texts.items():
            written = []
            for keyword_pub, tree in re.findall(r"(\bpub(?:\([^)]*\))?\s+)?\buse\s+([^;]+);", text):
                if keyword_pub:
                    continue  # a re-export, followed by resolve()
                written.extend(expand_use_tree(tree))
            code = re.sub(r"\buse\s+[^;]+;", "", text)
            written.extend(re.findall(r"\b((?:crate|super|self|social_reward)(?:::\w+)+)", code))
            for path in written:
                segments = self.absolute(module, path.split("::"))
                if segments is None:
                    continue
                target = self.resolve(segments)
                if target is not None and target != module and target != ():
                    if target[: len(module)] == module and len(target) > len(module):
                        # A parent using its own child module is how Rust builds a module.
                        pass
                    edges[module].add(target)
        return edges


def layer(module: tuple[str, ...]) -> str:
    return module[0] if module else ""


def strongly_connected(graph: dict) -> list[list]:
    index, low, stack, on_stack, result = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def name(module: tuple[str, ...]) -> str:
    return "::".join(module) or "crate"


def main() -> int:
    crate = Crate()
    edges = crate.imports()
    problems = []
    unknown = sorted({layer(m) for m in crate.files if m and layer(m) not in RANK})
    for top in unknown:
        problems.append(f"module `{top}` has no layer: add it to LAYERS in {Path(__file__).name}")
    for source in sorted(edges):
        for target in sorted(edges[source]):
            a, b = RANK.get(layer(source)), RANK.get(layer(target))
            if a is not None and b is not None and b > a:
                problems.append(f"upward import: {name(source)} ({layer(source)}) uses {name(target)} ({layer(target)})")
    for component in strongly_connected(edges):
        problems.append("file circle: " + " ↔ ".join(name(m) for m in component))
    # Circles between the modules one level below a layer (sources::kafka ↔ sources::simulator).
    grouped: dict[tuple[str, ...], set[tuple[str, ...]]] = defaultdict(set)
    for source, targets in edges.items():
        for target in targets:
            a, b = source[:2], target[:2]
            if a != b and a[:1] == b[:1] and len(a) == 2 and len(b) == 2:
                grouped[a].add(b)
    for component in strongly_connected(grouped):
        problems.append("module circle: " + " ↔ ".join(name(m) for m in component))
    if "--edges" in sys.argv:
        for source in sorted(edges):
            for target in sorted(edges[source]):
                print(f"{name(source)} -> {name(target)}")
    for problem in problems:
        print(problem)
    files = len(crate.files)
    count = sum(len(t) for t in edges.values())
    if problems:
        print(f"{len(problems)} problem(s) in {files} files, {count} imports between files", file=sys.stderr)
        return 1
    print(f"layers hold: {files} files, {count} imports between files, no upward import, no circle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
