"""One table of exit codes for the whole CLI: each code one meaning, the docs page the same table, no command
with codes of its own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ttsload.bench.exitcodes import MEANINGS, ExitCode

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"\| (\d+) \| `(\w+)` \| (.+) \|")


def test_every_code_has_one_meaning_and_one_value() -> None:
    assert set(MEANINGS) == set(ExitCode)
    assert len({code.value for code in ExitCode}) == len(ExitCode.__members__)  # no alias: one value, one name
    assert len(set(MEANINGS.values())) == len(MEANINGS)


def test_the_docs_table_is_the_enum() -> None:
    page = (ROOT / "docs" / "reference" / "exit-codes.md").read_text()
    rows = [(int(code), name, meaning.replace("\\|", "|")) for code, name, meaning in ROW.findall(page)]
    assert rows == [(code.value, code.name, MEANINGS[code]) for code in ExitCode]


def bare_exit_codes(path: Path, root: Path = ROOT) -> list[str]:
    """An integer returned by a command's function, an EXIT_* constant defined, or sys.exit(<int>): a code
    that does not come from the table."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.FunctionDef) and (node.name in {"main", "run"} or node.name.startswith("cmd_")):
            found += [f"{where} {node.name} returns {r.value.value}" for r in ast.walk(node)
                      if isinstance(r, ast.Return) and isinstance(r.value, ast.Constant)
                      and type(r.value.value) is int]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            found += [f"{where} defines {name}" for name in names if name.startswith("EXIT_")]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "exit" \
                and node.args and isinstance(node.args[0], ast.Constant) and type(node.args[0].value) is int:
            found.append(f"{where} exits {node.args[0].value}")
    return found


def test_the_cli_uses_only_the_table() -> None:
    bad = [line for path in sorted((ROOT / "src" / "ttsload" / "cli").rglob("*.py")) for line in bare_exit_codes(path)]
    assert not bad, "use bench.exitcodes.ExitCode:\n" + "\n".join(bad)


def test_the_scan_sees_a_code_of_its_own(tmp_path: Path) -> None:
    planted = tmp_path / "cmd.py"
    planted.write_text("import sys\nEXIT_DISK_FULL = 3\n\ndef cmd_x(args):\n    if args:\n        return 3\n"
                       "    sys.exit(2)\n")
    assert bare_exit_codes(planted, tmp_path) == ["cmd.py:2 defines EXIT_DISK_FULL", "cmd.py:4 cmd_x returns 3",
                                                  "cmd.py:7 exits 2"]
