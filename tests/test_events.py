"""Event names: one enum both sides use, equal to the plain strings that travel as JSON and sit in results folders."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from ttsload.strategies.events import Event

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for folder in ("bench", "strategies", "reports", "src") for p in sorted((ROOT / folder).rglob("*.py"))]
NAMES = {event.value for event in Event}


def test_an_event_travels_as_its_plain_name() -> None:
    record = json.loads(json.dumps({"event": Event.REQUEST_END}))
    assert record == {"event": "request_end"}
    assert record["event"] == Event.REQUEST_END and {"request_end": 1}[Event.REQUEST_END] == 1
    assert {Event.FIRST_AUDIO: 2.0}.get(json.loads('"first_audio"')) == 2.0  # a results folder's name finds it
    assert f"{Event.READY}" == str(Event.READY) == "ready"


def bare_event_names(path: Path, root: Path = ROOT) -> list[str]:
    """Calls that pass an event's name as a string literal (hook("ready"), named("request_end")) and comparisons of
    an event field with one (e["event"] == "ready"): each should name an Event member."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if (name.endswith("hook") or name in {"first", "named", "_named", "self"}) \
                    and node.args[0].value in NAMES:
                found.append(f"{path.relative_to(root)}:{node.lineno} {name}({node.args[0].value!r})")
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Subscript) \
                and isinstance(node.left.slice, ast.Constant) and node.left.slice.value == "event":
            found += [f"{path.relative_to(root)}:{node.lineno} == {c.value!r}" for c in node.comparators
                      if isinstance(c, ast.Constant) and c.value in NAMES]
    return found


def test_no_bare_event_names_in_the_code() -> None:
    bad = [line for path in SOURCES for line in bare_event_names(path)]
    assert not bad, "name the Event member instead of a string:\n" + "\n".join(bad)


def test_the_scan_sees_a_bare_name(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text('def f(hook, e):\n    hook("ready")\n    return e["event"] == "request_end"\n')
    assert bare_event_names(planted, tmp_path) == ["planted.py:2 hook('ready')", "planted.py:3 == 'request_end'"]
