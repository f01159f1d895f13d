"""The habits that keep the code easy to inherit: ruff's lint and format, the import-linter contracts
(the orchestrator's layers; trainables never importing the orchestrator or Ray), and no import cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_lint_and_format_pass() -> None:
    lint = _run(str(BIN / "ruff"), "check", ".")
    assert lint.returncode == 0, lint.stdout[-4000:]
    form = _run(str(BIN / "ruff"), "format", "--check", ".")
    assert form.returncode == 0, form.stdout[-4000:]


def test_import_contracts_are_kept() -> None:
    result = _run(str(BIN / "lint-imports"))
    assert result.returncode == 0, result.stdout[-4000:]


def test_no_module_imports_itself_back_through_others() -> None:
    graph = grimp.build_graph("orchestrator", "trainables", "scalesweep")
    edges = {m: graph.find_modules_directly_imported_by(m) & graph.modules for m in graph.modules}
    cycles = []
    for start in sorted(edges):  # a depth-first walk from each module back to itself
        seen, stack = set(), [(start, (start,))]
        while stack:
            module, path = stack.pop()
            for nxt in edges[module]:
                if nxt == start:
                    cycles.append(" -> ".join((*path, start)))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, (*path, nxt)))
    assert not cycles, cycles[:5]
