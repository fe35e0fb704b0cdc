"""Settings: sources and their order, validation without I/O, and the CLI's help."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from appliance.cli import build_parser
from appliance.config import Settings, load_settings


def test_flags_beat_environment_beat_file(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('port = 1111\nhost = "0.0.0.0"\nlibrary_roots = ["/file/photos"]\n')
    env = {"APPLIANCE_PORT": "2222", "APPLIANCE_LIBRARY_ROOTS": "/env/a:/env/b"}
    settings = load_settings({"port": 3333}, env, config)
    assert settings.port == 3333
    assert settings.host == "0.0.0.0"
    assert settings.library_roots == [Path("/env/a"), Path("/env/b")]
    assert load_settings({}, env, config).port == 2222
    assert load_settings({}, {}, config).port == 1111
    # the config file may also come from the environment
    assert load_settings({}, {"APPLIANCE_CONFIG": str(config)}).port == 1111


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = load_settings({}, {})
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.data_dir == tmp_path / "appliance"
    assert settings.is_loopback


@pytest.mark.parametrize(
    "values",
    [{"port": 70000}, {"api_token": "short"}, {"library_roots": []}, {"colour": "red"}, {"max_body_bytes": 10}],
)
def test_bad_settings_are_refused(values):
    with pytest.raises(ValidationError):
        Settings(**values)


@pytest.mark.parametrize(
    "host,loopback", [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("10.0.0.2", False)]
)
def test_loopback_detection(host, loopback):
    assert Settings(host=host).is_loopback is loopback


def test_every_cli_option_has_help():
    parser = build_parser()
    serve = parser._subparsers._group_actions[0].choices["serve"]
    for action in serve._actions:
        own_help = (action.help or "").split(" [env ")[0]  # the env suffix alone is no help
        assert own_help.strip(), action.option_strings
    args = parser.parse_args(["serve", "--library-root", "/a", "--library-root", "/b", "--port", "9"])
    assert args.library_roots == [Path("/a"), Path("/b")] and args.port == 9
