#!/usr/bin/env python3
"""Fail when an adapter package imports anything of annobridge beyond its public kit.

An adapter (``adapters/<tool>/src``, ``examples/plugin-*``) may import ``annobridge`` (the top level),
``annobridge.kit``, ``annobridge.http``, ``annobridge.testing`` and ``annobridge.testserver``: the
documented API that stays put while the core's internals move. Run by the ``lint`` tox env; exits 1
listing each offending import as ``path:line: module``.

    python tools/check_adapter_imports.py [PATH ...]
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

PUBLIC = frozenset({"annobridge", "annobridge.kit", "annobridge.http", "annobridge.testing", "annobridge.testserver"})
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATHS = [*sorted(ROOT.glob("adapters/*/src")), *sorted(ROOT.glob("examples/plugin-*"))]


def private_imports(source: str, filename: str = "<string>") -> Iterator[tuple[int, str]]:
    """(line, module) for every import of a non-public annobridge module in ``source``."""
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
            if node.module == "annobridge":
                # ``from annobridge import export`` names a function; ``from annobridge import offsets``
                # a private module: only names the top level exports count as public.
                modules += [f"annobridge.{alias.name}" for alias in node.names if _is_module(alias.name)]
        for module in modules:
            if (module == "annobridge" or module.startswith("annobridge.")) and module not in PUBLIC:
                yield node.lineno, module


def _is_module(name: str) -> bool:
    return (ROOT / "src" / "annobridge" / name).is_dir() or (ROOT / "src" / "annobridge" / f"{name}.py").is_file()


def python_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_file():
            yield path
        else:
            yield from sorted(p for p in path.rglob("*.py") if ".venv" not in p.parts and "build" not in p.parts)


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or DEFAULT_PATHS
    found = 0
    checked = 0
    for file in python_files(paths):
        checked += 1
        for line, module in private_imports(file.read_text(encoding="utf-8"), str(file)):
            found += 1
            where = file.relative_to(ROOT) if file.is_relative_to(ROOT) else file
            print(f"{where}:{line}: imports {module}; adapters may import only {', '.join(sorted(PUBLIC))}")
    if found:
        print(f"{found} private import(s) in adapter code: add what is needed to annobridge.kit instead.")
        return 1
    print(f"adapter imports: {checked} files import only the public kit")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
