"""The command line: parses options, builds settings, hands over. No logic of its own."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from . import __version__
from .config import Settings, load_settings


def _add_setting(parser: argparse.ArgumentParser, name: str, *flags: str, **options) -> None:
    """A flag for a setting, with the setting's own help text."""
    flags = flags or ("--" + name.replace("_", "-"),)
    help_text = Settings.model_fields[name].description
    parser.add_argument(*flags, dest=name, default=None, help=f"{help_text} [env APPLIANCE_{name.upper()}]", **options)


SERVE_SETTINGS = [
    "host",
    "port",
    "data_dir",
    "library_roots",
    "models_dir",
    "api_token",
    "max_body_bytes",
    "accelerator",
    "detector",
    "object_threshold",
    "embedder",
    "face_threshold",
    "ingest_workers",
]
FLAG_OPTIONS = {
    "port": {"type": int},
    "data_dir": {"type": Path},
    "library_roots": {"type": Path, "action": "append", "metavar": "DIR"},
    "models_dir": {"type": Path},
    "max_body_bytes": {"type": int},
    "accelerator": {"choices": ["auto", "cpu", "edgetpu"]},
    "detector": {"choices": ["yolov8n", "ssd_mobilenet_v1"]},
    "object_threshold": {"type": float},
    "embedder": {"choices": ["mobilefacenet_128d", "mobilefacenet_192d"]},
    "face_threshold": {"type": float},
    "ingest_workers": {"type": int},
}


def add_command(commands, name: str, help_text: str, handler, settings: list[str]) -> argparse.ArgumentParser:
    """A subcommand that reads the config file and the given settings' flags."""
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--config", type=Path, help="TOML config file [env APPLIANCE_CONFIG]")
    for setting in settings:
        flags = ("--library-root",) if setting == "library_roots" else ()
        _add_setting(parser, setting, *flags, **FLAG_OPTIONS.get(setting, {}))
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance", description="Photo-library appliance.")
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    add_command(commands, "serve", "Run the HTTP API and the ingest workers until stopped.", run_serve, SERVE_SETTINGS)
    models = add_command(commands, "models", "List or download the model files.", run_models, ["models_dir"])
    models.add_argument("action", choices=["list", "fetch"], help="list: what is there; fetch: download what is not")
    add_command(
        commands, "doctor", "Check what the device needs; exit non-zero if something fails.", run_doctor, SERVE_SETTINGS
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

    try:
        print(work())
    except (BackupError, OSError) as error:
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
    sys.exit(args.handler(args, settings))
