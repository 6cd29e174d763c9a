"""The docs site's generated pages match the code, and a change to the code without them fails the check."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("ttsload_gen_reference", ROOT / "docs" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_reference_pages_match_the_code(gen, capsys):
    assert gen.main(["--check"]) == 0, capsys.readouterr().out


def test_a_changed_help_text_makes_the_cli_page_stale(gen, monkeypatch, capsys):
    from ttsload.cli import main as cli

    real = cli.parser

    def changed():
        top = real()
        run = gen.subcommands(top)["run"][1]
        next(a for a in run._actions if "--repeat" in a.option_strings).help = "a help text nobody committed"
        return top

    monkeypatch.setattr(cli, "parser", changed)
    assert gen.main(["--check"]) == 1
    captured = capsys.readouterr()
    assert "docs/reference/cli.md is stale" in captured.err
    assert "a help text nobody committed" in captured.out  # the diff shows what changed


def test_a_new_scenario_key_makes_the_scenario_page_stale(gen, monkeypatch, capsys):
    from ttsload.bench.scenario import schema

    monkeypatch.setitem(schema.TABLES["texts"], "language", schema.TEXT)
    assert gen.main(["--check"]) == 1
    assert "docs/reference/scenarios.md is stale" in capsys.readouterr().err


def test_every_cli_option_is_in_the_reference(gen):
    from ttsload.cli.main import parser

    page = (ROOT / "docs" / "reference" / "cli.md").read_text()
    pending = [("ttsload", parser())]
    while pending:
        prefix, command = pending.pop()
        assert f"`{prefix}`" in page
        for action in command._actions:
            for option in set(action.option_strings) - {"-h", "--help"}:
                assert f"`{option}" in page or f", {option}" in page, (prefix, option)
        pending += [(f"{prefix} {name}", sub) for name, (_, sub) in gen.subcommands(command).items()]


def test_readme_is_short_and_headings_carry_no_issue_numbers():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        headings = [line for line in page.read_text().splitlines() if line.startswith("#")]
        assert not [h for h in headings if re.search(r"#\d", h.lstrip("#"))], page
