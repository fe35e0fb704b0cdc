"""Settings: one table of name, default and help, read from a TOML file, the environment and flags.

Later sources win: defaults < config file < APPLIANCE_* environment variables < command-line flags.
Validation never touches the disk; `resolve_models_dir` and the server's start-up checklist do.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENV_PREFIX = "APPLIANCE_"


def default_data_dir() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "appliance"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Address to listen on; beyond loopback an API token is required.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0 asks the OS for a free one).")
    data_dir: Path = Field(
        default_factory=default_data_dir, description="Where the database, thumbnails and token live."
    )
    library_roots: list[Path] = Field(
        default_factory=lambda: [Path.home() / "Pictures"],
        description="Folders whose photos may be indexed; every path must lie inside one of them.",
    )
    models_dir: Path | None = Field(
        None, description="Folder holding the model files; defaults to ../shared/models beside the project."
    )
    api_token: str | None = Field(
        None, min_length=16, description="Token clients send as 'Authorization: Bearer TOKEN'."
    )
    accelerator: Literal["auto", "cpu", "edgetpu"] = Field(
        "auto", description="auto: the Edge TPU when its delegate loads, else the CPU; edgetpu: require it."
    )
    detector: Literal["yolov8n", "ssd_mobilenet_v1"] = Field(
        "yolov8n", description="Object detector: yolov8n (AGPL-3.0) or ssd_mobilenet_v1 (Apache-2.0)."
    )
    object_threshold: float | None = Field(
        None, gt=0, lt=1, description="Lowest score stored for an object; defaults to the detector's calibrated one."
    )
    embedder: Literal["mobilefacenet_128d", "mobilefacenet_192d"] = Field(
        "mobilefacenet_128d", description="Face embedding model: 128-d int8 (default) or 192-d float32."
    )
    face_min_score: float = Field(0.5, gt=0, lt=1, description="Lowest BlazeFace score kept as a face.")
    face_threshold: float = Field(
        0.5, gt=0, lt=1, description="Lowest cosine similarity of two faces taken as the same person."
    )
    recluster_after: int = Field(
        50, ge=1, description="Re-cluster every face in the background once this many were added or removed."
    )
    keep_jobs_days: int = Field(
        30, ge=1, description="Finished ingest jobs (and their per-file results) are forgotten after this."
    )
    ingest_workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Images analysed at once, each worker with its own interpreters (default: cores).",
    )
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest request body accepted (413 above).")
    max_image_pixels: int = Field(120_000_000, ge=1, description="Images with more pixels fail as decompression bombs.")
    analysis_size: int = Field(
        1280, ge=320, description="Longest side, in pixels, of the decoded image the models see (at most)."
    )
    thumbnail_size: int = Field(320, ge=32, description="Longest side of the cached thumbnails.")
    server_threads: int = Field(16, ge=1, le=256, description="HTTP worker threads.")
    listing_cache_mib: int = Field(
        64,
        ge=1,
        description="MiB of rendered listings kept until what they show changes (a library of 100,000 photos"
        " needs 17: its listings are 3.6 MB each).",
    )
    watch: bool = Field(
        True,
        description="Follow the library roots as files come, change, move and go: inotify (through watchdog) and"
        " a reconcile scan; off: only what clients add is indexed.",
    )
    reconcile_minutes: int = Field(
        60,
        ge=1,
        description="Minutes between scans of the library roots that catch what watching missed (also at start).",
    )
    decode_budget_mib: int = Field(
        256,
        ge=16,
        description="MiB of decoded pixels the ingest workers may hold at once; an image needing more fails"
        " with a reason.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="More Host names clients may use, beyond loopback and this machine's names and addresses"
        " ('*': any; env: comma-separated).",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Web origins (scheme://host[:port]) whose pages may call the API; never with credentials"
        " (env: comma-separated).",
    )

    @field_validator("library_roots", mode="before")
    @classmethod
    def split_path_list(cls, value: Any) -> Any:
        # Environment variables carry a list the shell way: /a/photos:/b/photos.
        if isinstance(value, str):
            return [part for part in value.split(os.pathsep) if part]
        return value

    @field_validator("allowed_hosts", "cors_origins", mode="before")
    @classmethod
    def split_comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def origins_are_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(f"{origin!r} is not an origin like http://photos.example:8080 (no path)")
        return [origin.lower() for origin in value]

    @field_validator("library_roots")
    @classmethod
    def at_least_one_root(cls, value: list[Path]) -> list[Path]:
        if not value:
            raise ValueError("give at least one library root")
        return [root.expanduser() for root in value]

    @field_validator("data_dir", "models_dir")
    @classmethod
    def expand_user(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def settings_from_env(environ: dict[str, str]) -> dict[str, str]:
    values = {}
    for name in Settings.model_fields:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = raw
    return values


def load_settings(
    flags: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge every source and validate once; raises pydantic.ValidationError or OSError."""
    environ = os.environ if environ is None else environ
    config_file = config_file or environ.get(ENV_PREFIX + "CONFIG")
    values: dict[str, Any] = {}
    if config_file:
        with open(config_file, "rb") as f:
            values.update(tomllib.load(f))
    values.update(settings_from_env(environ))
    values.update({name: value for name, value in (flags or {}).items() if value is not None})
    return Settings.model_validate(values)


def resolve_models_dir(settings: Settings) -> Path:
    """The configured models dir, else ../shared/models beside the project (or the cwd), else DATA_DIR/models."""
    if settings.models_dir is not None:
        return settings.models_dir
    project_root = Path(__file__).resolve().parent.parent
    for candidate in (project_root.parent / "shared" / "models", Path.cwd().parent / "shared" / "models"):
        if candidate.is_dir():
            return candidate
    return settings.data_dir / "models"
