"""`appliance doctor`: one table of what the device needs, whether it is there, and how to fix what is not."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import sys
from dataclasses import dataclass

from .config import Settings, resolve_models_dir
from .db import connect, sqlite_module
from .infer.runtime import RUNTIME, edgetpu_problem
from .models import ModelError, load_manifest, verified_path

MIN_FREE_BYTES = 1 << 30


@dataclass
class Check:
    name: str
    state: str  # ok, warn or FAIL
    detail: str
    fix: str = ""


def python_check() -> Check:
    # pip refuses an older Python than pyproject's requires-python, so this only reports which one runs.
    return Check("python", "ok", f"{platform.python_version()} ({sys.executable})")


def sqlite_checks() -> list[Check]:
    module = sqlite_module()
    driver = "stdlib sqlite3" if module.__name__ == "sqlite3" else f"{module.__name__} (stdlib cannot load extensions)"
    try:
        conn = connect(":memory:", module)
        sqlite_version, vec_version = conn.execute("SELECT sqlite_version(), vec_version()").fetchone()
        conn.close()
    except Exception as error:  # any failure here is what the doctor is for
        return [Check("sqlite-vec", "FAIL", str(error), "pip install --force-reinstall sqlite-vec sqlean.py")]
    return [Check("sqlite", "ok", f"{sqlite_version}, {driver}"), Check("sqlite-vec", "ok", vec_version)]


def model_checks(settings: Settings, edgetpu: bool) -> list[Check]:
    models_dir = resolve_models_dir(settings)
    manifest = load_manifest()
    wanted = [manifest[settings.detector], manifest["blazeface_full_range"], manifest[settings.embedder]]
    checks = []
    for spec in wanted:
        for variant in (False, True) if edgetpu and spec.edgetpu_file else (False,):
            relative = spec.variants(variant)[0]
            try:
                verified_path(spec, models_dir, edgetpu=variant)
                checks.append(Check(f"model {spec.name}", "ok", f"{models_dir / relative} (sha256 verified)"))
            except ModelError as error:  # the very words `serve` would stop with
                checks.append(Check(f"model {spec.name}", "FAIL", error.problem, error.fix))
    return checks


def edgetpu_check(settings: Settings) -> tuple[Check, bool]:
    problem = edgetpu_problem()
    if problem is None:
        return Check("edge tpu", "ok", f"present, used by {RUNTIME}"), True
    state = "FAIL" if settings.accelerator == "edgetpu" else "ok"
    fix = "plug the Coral in and install libedgetpu1-std, or set accelerator = cpu" if state == "FAIL" else ""
    return Check("edge tpu", state, f"absent ({problem}); models run on the CPU", fix), False


def disk_check(settings: Settings) -> Check:
    path = settings.data_dir if settings.data_dir.exists() else settings.data_dir.parent
    while not path.exists():
        path = path.parent
    free = shutil.disk_usage(path).free
    detail = f"{free / (1 << 30):.1f} GiB free in {path}"
    if free < MIN_FREE_BYTES:
        return Check("disk", "FAIL", detail, "free some space, or move data_dir to a larger disk")
    return Check("disk", "ok", detail)


def library_checks(settings: Settings) -> list[Check]:
    checks = []
    for root in settings.library_roots:
        if root.is_dir() and os.access(root, os.R_OK | os.X_OK):
            checks.append(Check("library root", "ok", f"{root} readable"))
        else:
            fix = "mount the disk, fix the path in library_roots, or give the service user read access"
            checks.append(Check("library root", "FAIL", f"{root} is not a readable folder", fix))
    return checks


def port_check(settings: Settings) -> Check:
    try:
        with socket.create_server((settings.host, settings.port)):
            return Check("port", "ok", f"{settings.host}:{settings.port} free")
    except OSError as error:
        return Check(
            "port", "warn", f"{settings.host}:{settings.port}: {error.strerror}", "is the appliance already running?"
        )


def run_checks(settings: Settings) -> list[Check]:
    tpu, tpu_present = edgetpu_check(settings)
    return [
        python_check(),
        *sqlite_checks(),
        *model_checks(settings, edgetpu=tpu_present and settings.accelerator != "cpu"),
        tpu,
        disk_check(settings),
        *library_checks(settings),
        port_check(settings),
    ]


def report(checks: list[Check]) -> str:
    width = max(len(check.name) for check in checks)
    lines = []
    for check in checks:
        line = f"{check.state:<5} {check.name:<{width}}  {check.detail}"
        lines.append(line + (f"\n{'':<{width + 7}}fix: {check.fix}" if check.fix else ""))
    return "\n".join(lines)
