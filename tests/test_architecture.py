"""The package layout's rules, checked: the pure core depends on nothing but itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "voicebot" / "core"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file, relative ones resolved."""
    package = "voicebot.core"
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0]
                out.append((node.lineno, f"{base}.{node.module}" if node.module else base))
            elif node.module is not None:
                out.append((node.lineno, node.module))
    return out


def allowed(module: str) -> bool:
    top = module.split(".")[0]
    return (
        top in sys.stdlib_module_names
        or module == "voicebot.core"
        or (module.startswith("voicebot.core."))
    )


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_the_core_imports_only_the_standard_library_and_itself(path: Path) -> None:
    """The dialogue and its config model must run (and be tested) without YAML, audio, numpy
    or a network: anything else belongs in a shell around the core."""
    outside = [f"{path.name}:{line}: {m}" for line, m in imported_modules(path) if not allowed(m)]
    assert outside == []


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import yaml\nfrom voicebot.loading import loader\nimport json\n")
    assert [m for _, m in imported_modules(bad) if not allowed(m)] == ["yaml", "voicebot.loading"]
