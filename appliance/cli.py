"""The command line: parses options, builds settings, hands over. No logic of its own."""

from __future__ import annotations

import argparse
import logging
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from . import __version__
from .config import Settings, load_settings
from .errors import StartupError


def flag_options(name: str) -> dict:
    """argparse options for a setting, derived from its type in the settings table."""
    annotation = Settings.model_fields[name].annotation
    if isinstance(annotation, types.UnionType):  # `X | None`: the flag takes an X
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    kind = annotation
    if typing.get_origin(kind) is list:
        item = typing.get_args(kind)[0]
        return {"type": item, "action": "append", "metavar": "DIR" if item is Path else "VALUE"}
    if typing.get_origin(kind) is typing.Literal:
        return {"choices": list(typing.get_args(kind))}
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction}
    return {"type": kind}


def add_setting(parser: argparse.ArgumentParser, name: str) -> None:
    """A flag for a setting, with the setting's own help text; a list repeats its flag in the singular
    (library_roots: --library-root A --library-root B)."""
    options = flag_options(name)
    flag = "--" + (name.removesuffix("s") if options.get("action") == "append" else name).replace("_", "-")
    help_text = Settings.model_fields[name].description
    parser.add_argument(flag, dest=name, default=None, help=f"{help_text} [env APPLIANCE_{name.upper()}]", **options)


# serve and doctor take every setting; the other commands only what they use.
EVERY_SETTING = list(Settings.model_fields)


def add_command(commands, name: str, help_text: str, handler, settings: list[str]) -> argparse.ArgumentParser:
    """A subcommand that reads the config file and the given settings' flags."""
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--config", type=Path, help="TOML config file [env APPLIANCE_CONFIG]")
    for setting in settings:
        add_setting(parser, setting)
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance", description="Photo-library appliance.")
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    add_command(commands, "serve", "Run the HTTP API and the ingest workers until stopped.", run_serve, EVERY_SETTING)
    models = add_command(commands, "models", "List or download the model files.", run_models, ["models_dir"])
    models.add_argument("action", choices=["list", "fetch"], help="list: what is there; fetch: download what is not")
    add_command(
        commands, "doctor", "Check what the device needs; exit non-zero if something fails.", run_doctor, EVERY_SETTING
    )
    backup = add_command(
        commands, "backup", "Copy the database, consistently, even while serving.", run_backup, ["data_dir"]
    )
    backup.add_argument("destination", type=Path, help="a file, or a folder to put a dated file in")
    restore = add_command(
        commands, "restore", "Replace the database with a backup (stop the service first).", run_restore, ["data_dir"]
    )
    restore.add_argument("source", type=Path, help="a file written by `appliance backup`")
    return parser


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    from .server import serve

    serve(settings)
    return 0


def run_models(args: argparse.Namespace, settings: Settings) -> int:
    from .config import resolve_models_dir
    from .models import fetch, load_manifest, status

    models_dir = resolve_models_dir(settings)
    print(f"models dir: {models_dir}")
    failed = 0
    for spec in load_manifest().values():
        if args.action == "list":
            state = status(spec, models_dir)
            print(f"{spec.name:<24}{spec.role:<15}{state:<14}{spec.file}  [{spec.licence}]")
        else:
            line = fetch(spec, models_dir)
            print(line)
            state = status(spec, models_dir)
        failed += state != "ok"
    return 1 if failed else 0


def run_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from .doctor import report, run_checks

    checks = run_checks(settings)
    print(report(checks))
    return 1 if any(check.state == "FAIL" for check in checks) else 0


def report_outcome(action: str, work: Callable[[], str]) -> int:
    """Run a backup or restore; print what it did, or why it failed, without a traceback."""
    from .backup import BackupError
    from .db import sqlite_module

    try:
        print(work())
    except (BackupError, OSError, sqlite_module().Error) as error:
        print(f"appliance: {action} failed: {error}", file=sys.stderr)
        return 1
    return 0


def run_backup(args: argparse.Namespace, settings: Settings) -> int:
    from .backup import backup

    def work() -> str:
        written = backup(settings.data_dir, args.destination)
        return f"backed up {settings.data_dir} to {written} (integrity check ok)"

    return report_outcome("backup", work)


def run_restore(args: argparse.Namespace, settings: Settings) -> int:
    from .backup import restore

    def work() -> str:
        kept = restore(settings.data_dir, args.source)
        return f"restored {args.source} into {settings.data_dir}" + (
            f"; the previous database is in {kept}" if kept else ""
        )

    return report_outcome("restore", work)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    flags = {name: value for name, value in vars(args).items() if name in Settings.model_fields}
    try:
        settings = load_settings(flags, config_file=args.config)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        sys.exit(f"appliance: invalid settings: {problems}")
    except OSError as error:
        sys.exit(f"appliance: cannot read the config file: {error}")
    try:
        sys.exit(args.handler(args, settings))
    except (StartupError, OSError) as error:  # a user's mistake or the machine's state: a line, not a traceback
        sys.exit(f"appliance {args.command}: {error}")
