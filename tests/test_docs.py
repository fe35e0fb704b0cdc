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
    for name in Settings.model_fields:
        assert f"`{name}`" in README, name
