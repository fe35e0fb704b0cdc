"""The running service: start and stop read as checklists, in one process with a few threads."""

from __future__ import annotations

import logging
import os
import signal
import threading

from cheroot import wsgi

from .api import Context, make_app
from .config import Settings
from .datadir import DATABASE_FILE, TOKEN_FILE, DataDirLock, stored_token
from .db import Database
from .errors import StartupError
from .faces import FaceIndex
from .http import make_server
from .memory import tune_allocator
from .paths import LibraryRoots
from .pipeline import PipelineFactory
from .supervisor import Supervisor
from .watch import LibraryWatch
from .workers import IngestWorkers

log = logging.getLogger(__name__)


def ensure_token(settings: Settings) -> Settings:
    """Beyond loopback a token is required: use the configured one, else the one kept in the data dir."""
    if settings.api_token or settings.is_loopback:
        return settings
    token, new = stored_token(settings.data_dir)
    if new:
        log.warning("generated an API token for listening on %s", settings.host)
    log.warning("clients must send 'Authorization: Bearer TOKEN'; the token is in %s", settings.data_dir / TOKEN_FILE)
    return settings.model_copy(update={"api_token": token})


class Appliance:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.lock = DataDirLock(settings.data_dir)
        self.db: Database | None = None
        self.supervisor = Supervisor()
        self.worker: IngestWorkers | None = None
        self.watch: LibraryWatch | None = None
        self.http: wsgi.Server | None = None
        self._http_thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.http.bind_addr[1]

    def start(self) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.lock.acquire()  # one process per data dir; a restore waits for it to stop
        settings = self.settings = ensure_token(settings)
        pipelines = PipelineFactory(settings)  # verifies every model file: a bad one stops start-up here
        self.db = Database(settings.data_dir / DATABASE_FILE)
        roots = LibraryRoots(settings.library_roots, exclude=[settings.data_dir])
        for root in roots.roots:
            if not root.is_dir():
                log.warning("library root %s is not a readable folder", root)
        faces = FaceIndex(pipelines.face_dimensions, settings.face_threshold)
        faces.open(self.db)
        workers = settings.ingest_workers or os.cpu_count() or 1
        self.worker = IngestWorkers(
            self.supervisor,
            self.db,
            faces,
            pipelines,
            roots,
            pipelines.fingerprint,
            workers,
            settings.recluster_after,
            settings.keep_jobs_days,
        )
        self.worker.start()
        self.watch = LibraryWatch(
            self.db,
            faces,
            roots,
            self.worker.notify,
            settings.data_dir / "thumbnails",
            settings.watch,
            settings.reconcile_minutes,
        )
        if settings.watch:
            self.watch.start()
            self.supervisor.start("watch", self.watch.step)
        context = Context(
            settings=settings,
            db=self.db,
            roots=roots,
            supervisor=self.supervisor,
            worker=self.worker,
            watch=self.watch,
            faces=faces,
            models=pipelines.describe(),
            decode_budget=pipelines.budget,
        )
        self.http = make_server(settings, make_app(context))
        self.http.prepare()
        self._http_thread = threading.Thread(target=self.http.serve, name="http", daemon=True)
        self._http_thread.start()
        log.info("serving on http://%s:%d", settings.host, self.port)

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()  # stops accepting, lets requests in flight finish
            self._http_thread.join(10)
        self.supervisor.stop()  # every background loop finishes its step (the analysers, the image in hand)
        if self.worker is not None:
            self.worker.stop()
        if self.watch is not None:
            self.watch.stop()
        if self.db is not None:
            self.db.close()
        self.lock.release()
        log.info("stopped")


def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly."""
    tune_allocator()
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    appliance = Appliance(settings)
    try:
        appliance.start()
        stopping.wait()
    except StartupError as error:
        raise SystemExit(f"appliance: {error}") from None
    finally:
        appliance.stop()
