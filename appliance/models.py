"""The model manifest (models/manifest.toml): which files the appliance uses, verifying and fetching them."""

from __future__ import annotations

import hashlib
import os
import tempfile
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from .errors import StartupError

# models/manifest.toml, through the package's link to it (which installs as a copy).
MANIFEST_PATH = Path(__file__).parent / "manifest.toml"


class ModelError(StartupError):
    """A model cannot be used: `problem` names the file, `fix` says what to do (serve and doctor both say
    exactly these). Stops start-up."""

    def __init__(self, problem: str, fix: str):
        super().__init__(f"{problem}: {fix}")
        self.problem = problem
        self.fix = fix


class ModelMissing(ModelError):
    """The model file is not in the models dir."""


class ModelMismatch(ModelError):
    """The model file is there but its sha256 is not the manifest's."""


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    role: str
    file: str
    sha256: str
    edgetpu_file: str | None = None
    edgetpu_sha256: str | None = None
    licence: str
    input: str
    output: str
    labels: str = ""
    dimensions: int | None = None  # of an embedder's vectors
    source: str
    url: str = ""

    def variants(self, edgetpu: bool) -> tuple[str, str]:
        if edgetpu and self.edgetpu_file and self.edgetpu_sha256:
            return self.edgetpu_file, self.edgetpu_sha256
        return self.file, self.sha256


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, ModelSpec]:
    with open(path, "rb") as f:
        entries = tomllib.load(f)["models"]
    return {name: ModelSpec(name=name, **entry) for name, entry in entries.items()}


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verified_path(spec: ModelSpec, models_dir: Path, edgetpu: bool = False) -> Path:
    """The model file's path once it is there and matches the manifest; else ModelError naming it."""
    relative, expected = spec.variants(edgetpu)
    path = models_dir / relative
    if not path.is_file():
        fetch = ", or run `appliance models fetch`" if spec.url else ""
        raise ModelMissing(
            f"model file missing: {path} (model '{spec.name}')",
            f"copy {relative} into {models_dir}{fetch}, or point models_dir at the folder that holds it",
        )
    actual = sha256_of(path)
    if actual != expected:
        raise ModelMismatch(
            f"model file {path} does not match the manifest (sha256 {actual[:12]}..., expected {expected[:12]}...)",
            f"replace it with the file the manifest names ({relative})",
        )
    return path


def status(spec: ModelSpec, models_dir: Path) -> str:
    try:
        verified_path(spec, models_dir)
    except ModelMissing:
        return "missing"
    except ModelMismatch:
        return "bad checksum"
    return "ok"


def fetch(spec: ModelSpec, models_dir: Path, timeout: float = 30) -> str:
    """Download one model unless it is already there and intact; returns a line saying what happened."""
    target = models_dir / spec.file
    if status(spec, models_dir) == "ok":
        return f"{spec.name}: already present and verified"
    if not spec.url:
        return f"{spec.name}: no public download; copy {spec.file} into {models_dir} by hand"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(spec.url, timeout=timeout) as response:
            while chunk := response.read(1 << 16):
                out.write(chunk)
        actual = sha256_of(Path(tmp))
        if actual != spec.sha256:
            return f"{spec.name}: downloaded file has sha256 {actual[:12]}..., not the manifest's; not installed"
        os.replace(tmp, target)
        return f"{spec.name}: downloaded and verified"
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        return f"{spec.name}: download failed ({reason}); check the network or copy {spec.file} by hand"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
