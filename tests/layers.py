"""The import layers of the source tree, and a checker that lists every import against them.

    presentation  etwtools.cli, .output, .progress, .event_tables    (command line, writers, progress bars)
    application   every other etwtools module (sources, attribution, processes, synattack, annotate, ...)
    formats       etwtools.parsers.*  (installed from ./parsers)
    leaf          etwtools.parsers.errors, .diagnostics, .units   (stdlib only)

A module may import its own layer and the layers below it, never a layer above. Every import counts:
module level, inside functions, and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

LAYERS = ["leaf", "formats", "application", "presentation"]
PRESENTATION = {"etwtools.cli", "etwtools.output", "etwtools.progress", "etwtools.event_tables"}
LEAF = {"etwtools.parsers.errors", "etwtools.parsers.diagnostics", "etwtools.parsers.units"}


def layer(module: str) -> str:
    """The layer of a dotted module name of the project."""
    if any(module == m or module.startswith(m + ".") for m in LEAF):
        return "leaf"
    if module == "etwtools.parsers" or module.startswith("etwtools.parsers."):
        return "formats"
    if any(module == m or module.startswith(m + ".") for m in PRESENTATION):
        return "presentation"
    return "application"


def module_name(root: Path, path: Path) -> str:
    """The installed name of a source file (./parsers is installed as etwtools.parsers)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[0] == "parsers":
        parts.insert(0, "etwtools")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(root: Path, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) of every import of the project's modules in ``path``."""
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        out += [(node.lineno, t) for t in targets if t == "etwtools" or t.startswith("etwtools.")]
    return out


def violations(root: Path) -> list[str]:
    """``file:line: module (layer) imports target (layer)`` for every import of a higher layer, and for
    every import of ``etwtools`` itself from below the application."""
    found = []
    for path in sorted([*root.glob("etwtools/**/*.py"), *root.glob("parsers/**/*.py")]):
        name = module_name(root, path)
        mine = LAYERS.index(layer(name))
        for line, target in imports(root, path):
            theirs = LAYERS.index(layer(target)) if target != "etwtools" else LAYERS.index("application")
            if theirs > mine:
                found.append(
                    f"{path.relative_to(root)}:{line}: {name} ({layer(name)}) imports {target} "
                    f"({LAYERS[theirs]})"
                )
    return found
