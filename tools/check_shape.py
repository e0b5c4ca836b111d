"""Fail when a module of the package outgrows 450 lines or a function 80 (small modules and functions stay readable).

ruff checks the mccabe complexity (``C901``, max 12); this checks what ruff does not measure.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def problems(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if (n := len(text.splitlines())) > MAX_MODULE_LINES:
            found.append(f"{path}: {n} lines (max {MAX_MODULE_LINES}): split it by concept")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - start + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{path}:{node.lineno}: {node.name}() is {length} lines (max {MAX_FUNCTION_LINES})")
    return found


def main(argv: list[str]) -> int:
    found = [p for arg in argv or ["veo_provider"] for p in problems(Path(arg))]
    print("\n".join(found) or "shape: ok")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
