"""Cheroot, hardened against slow or clumsy clients, with its own refusals in the contract's JSON shape.

Cheroot hands every new connection to a worker thread, which then blocks reading the request line: a few
hundred idle or half-sent connections (slowloris) held every worker and stalled every other client. Here a
connection reaches a worker only once its whole request head (and a small body) is already in the socket;
until then it waits in the WaitingRoom, where one thread watches all of them (Linux epoll, edge-triggered).
"""

from __future__ import annotations

import json
import logging
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress

from cheroot import errors, wsgi
from cheroot.server import HTTPConnection, HTTPRequest

from .config import Settings

MAX_HEAD_BYTES = 64 * 1024  # request line and headers; a small body is waited for within the same bound
HEAD_END = re.compile(rb"\r\n\r\n|(?<!\r)\n")  # a bare LF: Cheroot refuses it at once, so hand it over
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)[ \t]*\r", re.IGNORECASE)
EXPECTS_CONTINUE = re.compile(rb"\r\nexpect:", re.IGNORECASE)  # its body comes only after our 100 Continue
DETAILS = {  # for Cheroot's refusals that come without a message
    408: "The request did not arrive in time; send it whole, promptly.",
    500: "Internal server error; the appliance's log has the details.",
}


def json_error(protocol: str, status: str, detail: str) -> bytes:
    """A complete response that closes the connection, with the body every other error has."""
    body = json.dumps({"detail": detail}).encode()
    head = f"{protocol} {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"Connection: close\r\n\r\n" + body


class Request(HTTPRequest):
    """Cheroot's request, with its own answers (malformed request line, oversized head, timeout) as
    `{"detail": ...}`, and without reading a large unread body into memory."""

    def send_headers(self):
        # To keep the connection, Cheroot first reads whatever body the app left unread, all into memory:
        # for a 404 or 421 to a 1 GB upload, closing is the better deal (as Cheroot does after a 413).
        if getattr(self.rfile, "remaining", 0) > MAX_HEAD_BYTES:
            self.close_connection = True
        super().send_headers()

    def simple_response(self, status, msg=""):
        status = str(status)
        if isinstance(msg, bytes):
            msg = msg.decode("latin-1")
        detail = msg or DETAILS.get(int(status[:3]), status[4:])
        # Cheroot closes the connection after every simple response; say so, as it does for 413 and 414.
        self.close_connection = True
        try:
            self.conn.wfile.write(json_error(self.server.protocol, status, detail))
        except OSError as error:
            if error.args[0] not in errors.socket_errors_to_ignore:
                raise


class Connection(HTTPConnection):
    RequestHandlerClass = Request


def request_is_ready(conn: HTTPConnection) -> bool:
    """Whether a worker can read the whole request head (and a small body) without waiting on the client.

    Looks without consuming: at what Cheroot already buffered (pipelined requests) and what the kernel
    holds (MSG_PEEK). The socket must be non-blocking: with a timeout, CPython waits even for MSG_DONTWAIT.
    """
    buffered = conn.rfile.peek(0) if conn.rfile.has_data() else b""  # peek(0) never reads when data is buffered
    try:
        data = buffered + conn.socket.recv(MAX_HEAD_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        data = buffered
    except OSError:
        return True  # reset or broken: Cheroot meets the error at once and closes quietly
    if len(data) >= MAX_HEAD_BYTES:
        return True  # too big to wait for: Cheroot answers 413/414, or the worker reads the rest of the body
    end = HEAD_END.search(data)
    if end is None:
        return False
    if end.group() != b"\r\n\r\n":
        return True
    head = data[: end.end()]
    length = CONTENT_LENGTH.search(head)
    if length is None or EXPECTS_CONTINUE.search(head):
        return True
    wanted = end.end() + int(length.group(1))
    return wanted > MAX_HEAD_BYTES or len(data) >= wanted  # a large body (or a 413) is not waited for


class WaitingRoom:
    """Connections whose request has not fully arrived, watched by one thread instead of a worker each.

    Edge-triggered epoll wakes us once per arrival of new bytes (level-triggered would wake us without end
    for bytes we only peek at). A connection leaves for a worker once its request is ready or its peer hung
    up; it is closed instead (with a 408 if it had started a request) once the server's `head_timeout` passes.
    """

    EVENTS = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLET
    HUNG_UP = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
    TICK = 0.25  # seconds between deadline checks

    def __init__(self, server: Server):
        self.server = server
        self._epoll = select.epoll()
        self._waiting: dict[int, tuple[HTTPConnection, float]] = {}  # fd -> (connection, when to give up)
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="http-waiting-room", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def park(self, conn: HTTPConnection) -> None:
        with self._lock:
            if self._closed:
                conn.close()
                return
            fd = conn.socket.fileno()
            self._waiting[fd] = (conn, time.monotonic() + self.server.head_timeout)
            self._epoll.register(fd, self.EVENTS)  # reports bytes already there at once

    def _leave(self, fd: int) -> HTTPConnection:
        with self._lock:
            self._epoll.unregister(fd)
            return self._waiting.pop(fd)[0]

    def _run(self) -> None:
        while not self._closed:
            try:
                self._watch()
            except Exception:  # every new connection passes through here: log, never stop
                self.server.error_log("waiting room", level=logging.ERROR, traceback=True)

    def _watch(self) -> None:
        for fd, events in self._epoll.poll(self.TICK):
            with self._lock:
                conn, _ = self._waiting.get(fd, (None, 0))
            if conn is not None and (events & self.HUNG_UP or request_is_ready(conn)):
                self._leave(fd)
                self.server.dispatch(conn)  # a hung-up peer: Cheroot answers what it can and closes
        now = time.monotonic()
        with self._lock:
            late = [fd for fd, (_, deadline) in self._waiting.items() if deadline < now]
        for fd in late:
            self._give_up(self._leave(fd))

    def _give_up(self, conn: HTTPConnection) -> None:
        with suppress(OSError):
            if conn.rfile.has_data() or conn.socket.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                conn.socket.send(json_error(self.server.protocol, "408 Request Timeout", DETAILS[408]))  # best effort
        conn.close()

    def close(self) -> None:
        """Stop watching and close every connection still waiting."""
        self._closed = True
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            waiting, self._waiting = self._waiting, {}
            self._epoll.close()
        for conn, _ in waiting.values():
            conn.close()


class Server(wsgi.Server):
    """Cheroot's WSGI server whose workers only ever read requests that have already arrived."""

    ConnectionClass = Connection
    head_timeout = 10.0  # seconds a connection may take to send its request head (from connect or first byte)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.waiting_room = WaitingRoom(self)

    def prepare(self) -> None:
        super().prepare()
        self.waiting_room.start()

    def process_conn(self, conn: HTTPConnection) -> None:
        # Called for every new connection and every kept-alive one with bytes to read.
        conn.socket.settimeout(0)
        if request_is_ready(conn):
            self.dispatch(conn)
        else:
            self.waiting_room.park(conn)

    def dispatch(self, conn: HTTPConnection) -> None:
        conn.socket.settimeout(self.timeout)  # the worker reads blocking, as Cheroot expects
        super().process_conn(conn)

    def stop(self) -> None:
        self.waiting_room.close()
        super().stop()
        # Cheroot registers every server's statistics in a process-wide dict: drop ours, and the app with it.
        logging.statistics.pop(f"Cheroot HTTPServer {id(self)}", None)


def make_server(settings: Settings, app: Callable) -> Server:
    server = Server(
        (settings.host, settings.port),
        app,
        numthreads=settings.server_threads,
        server_name="appliance",
        shutdown_timeout=5,
        request_queue_size=1024,  # a burst of new connections waits in the kernel instead of being dropped
    )
    server.max_request_header_size = MAX_HEAD_BYTES
    return server
