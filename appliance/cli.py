"""The command line: parses options, builds settings, hands over. No logic of its own."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from . import __version__
from .config import Settings, load_settings


def _add_setting(parser: argparse.ArgumentParser, name: str, *flags: str, **options) -> None:
    """A flag for a setting, with the setting's own help text."""
    flags = flags or ("--" + name.replace("_", "-"),)
    help_text = Settings.model_fields[name].description
    parser.add_argument(*flags, dest=name, default=None, help=f"{help_text} [env APPLIANCE_{name.upper()}]", **options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance", description="Photo-library appliance.")
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="Run the HTTP API and the ingest worker until stopped.")
    serve.add_argument("--config", type=Path, help="TOML config file [env APPLIANCE_CONFIG]")
    _add_setting(serve, "host")
    _add_setting(serve, "port", type=int)
    _add_setting(serve, "data_dir", type=Path)
    _add_setting(serve, "library_roots", "--library-root", type=Path, action="append", metavar="DIR")
    _add_setting(serve, "models_dir", type=Path)
    _add_setting(serve, "api_token")
    _add_setting(serve, "max_body_bytes", type=int)
    _add_setting(serve, "accelerator", choices=["auto", "cpu", "edgetpu"])
    _add_setting(serve, "detector", choices=["yolov8n", "ssd_mobilenet_v1"])
    _add_setting(serve, "object_threshold", type=float)
    _add_setting(serve, "ingest_workers", type=int)
    serve.set_defaults(handler=run_serve)

    models = commands.add_parser("models", help="List or download the model files.")
    models.add_argument("--config", type=Path, help="TOML config file [env APPLIANCE_CONFIG]")
    _add_setting(models, "models_dir", type=Path)
    models.add_argument("action", choices=["list", "fetch"], help="list: what is there; fetch: download what is not")
    models.set_defaults(handler=run_models)
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
