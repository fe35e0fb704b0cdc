"""The docs are tested: the README's two commands are the real ones, and it documents every setting."""

from __future__ import annotations

import re

from appliance.cli import build_parser
from appliance.config import Settings

from .conftest import PROJECT

README = (PROJECT / "README.md").read_text()


def first_screen_commands() -> list[str]:
    return re.findall(r"^    (python3 -m venv .*)$", README[:1500], flags=re.MULTILINE)


def test_ci_runs_the_readme_test_command():
    install, test = first_screen_commands()
    assert "appliance serve" in install and "pytest" in test
    ci_lines = (PROJECT / ".ci" / "run").read_text().splitlines()
    assert test in ci_lines


def test_readme_start_command_parses():
    install, _ = first_screen_commands()
    serve = install.split(".venv/bin/appliance ", 1)[1].split()
    assert build_parser().parse_args(serve).command == "serve"


def test_readme_documents_every_setting():
    """A row of the Configuration table per setting, with a default and a meaning (not just a mention)."""
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {m[0]: m[1:] for m in re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \|$", section, flags=re.MULTILINE)}
    for name in Settings.model_fields:
        assert name in rows, f"no row for {name} in the Configuration table"
        default, meaning = (cell.strip() for cell in rows[name])
        assert default and len(meaning) > 10, name
