"""Cheroot, hardened against slow or clumsy clients, with its own refusals in the contract's JSON shape.

Cheroot hands every new connection to a worker thread, which then blocks reading the request: a few hundred
idle or half-sent connections (slowloris), or a few bodies sent a byte at a time, held every worker and
stalled every other client. Here a connection reaches a worker only once its whole request (head and body)
has arrived; until then it waits in the WaitingRoom, where one thread (Linux epoll, edge-triggered) reads
what arrives into the connection's own reader, from which the worker later reads it without waiting.
"""

from __future__ import annotations

import _pyio
import io
import json
import logging
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from cheroot import errors, wsgi
from cheroot.makefile import MakeFile, StreamReader, StreamWriter
from cheroot.server import HeaderReader, HTTPConnection, HTTPRequest

from .config import Settings

MAX_HEAD_BYTES = 64 * 1024  # request line and headers
HEAD_END = re.compile(rb"\r\n\r\n|(?<!\r)\n")  # a bare LF: Cheroot refuses it at once, so hand it over


class OneLength(dict):
    """Header fields as Cheroot collects them, refusing a second Content-Length that differs from the first:
    two readers that kept different ones would disagree on where the body ends (request smuggling)."""

    def __setitem__(self, name, value):
        if name == b"Content-Length" and self.get(name, value) != value:
            raise ValueError("Content-Length is given twice with different values.")
        super().__setitem__(name, value)


class StrictHeaders(HeaderReader):
    """Cheroot's header parsing (case, spaces, repeats) with one Content-Length at most."""

    def __call__(self, rfile, hdict=None):
        fields = super().__call__(rfile, OneLength())
        if hdict is None:
            return dict(fields)
        hdict.update(fields)
        return hdict


HEADERS = StrictHeaders()  # the waiting room reads the head as the worker will
DETAILS = {  # for refusals that come without a message
    408: "The request did not arrive in time; send it whole, promptly.",
    500: "Internal server error; the appliance's log has the details.",
    503: "The appliance is receiving too many requests at once; try again in a few seconds.",
}


def json_error(protocol: str, status: str, detail: str) -> bytes:
    """A complete response that closes the connection, with the body every other error has."""
    body = json.dumps({"detail": detail}).encode()
    head = f"{protocol} {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"Connection: close\r\n\r\n" + body


class WithoutExpect(StrictHeaders):
    """The header reader minus `Expect`: the waiting room has answered a 100-continue already."""

    def _allow_header(self, key_name):
        return key_name != b"Expect"


class Request(HTTPRequest):
    """Cheroot's request, with its own answers (malformed request line, oversized head, timeout) as
    `{"detail": ...}`, and a connection that never outlives a body left unread."""

    header_reader = WithoutExpect()

    def send_headers(self):
        # Cheroot keeps the connection even after the app's `Connection: close`, and would take an unread
        # chunked body for the next request (smuggling) or read an unread one whole: close instead.
        said_close = any(k.lower() == b"connection" and b"close" in v.lower() for k, v in self.outheaders)
        if said_close or self.chunked_read or getattr(self.rfile, "remaining", 0) > 0:
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


class Received(socket.SocketIO):
    """A socket's raw reader that first returns the bytes the waiting room already took off the socket."""

    def __init__(self, sock: socket.socket):
        super().__init__(sock, "rb")
        self.received = bytearray()

    def readinto(self, buffer) -> int | None:
        if not self.received:
            return super().readinto(buffer)
        size = min(len(buffer), len(self.received))
        buffer[:size] = self.received[:size]
        del self.received[:size]
        return size


class Reader(StreamReader):
    """Cheroot's buffered reader of a connection, over `Received`."""

    def __init__(self, sock: socket.socket, bufsize: int):
        _pyio.BufferedReader.__init__(self, Received(sock), bufsize)  # what StreamReader does, over our raw
        self.bytes_read = 0

    def has_data(self) -> bool:
        return super().has_data() or bool(self.raw.received)

    def unread(self) -> bytes:
        """What has arrived and is not read yet: Cheroot's buffer, then the waiting room's."""
        return self._read_buf[self._read_pos :] + self.raw.received

    def unread_size(self) -> int:
        return len(self._read_buf) - self._read_pos + len(self.raw.received)


class Writer(StreamWriter):
    """Sends straight from the caller's bytes. Cheroot's writer copies what is left of its buffer before every
    send: a 4 MB listing left as a dozen copies of up to 4 MB each, on every connection at once."""

    def write(self, data) -> int:
        self._checkClosed()
        view = memoryview(data).cast("B")
        with self._write_lock:
            while view:
                sent = self.raw.write(view)  # a partial send; None only for a non-blocking socket not ready
                view = view[sent or 0 :]
        self.bytes_written += len(data)
        return len(data)


class Connection(HTTPConnection):
    RequestHandlerClass = Request

    def __init__(self, server, sock, makefile=MakeFile):
        super().__init__(server, sock, makefile)
        self.rfile = Reader(sock, self.rbufsize)  # so the worker first reads what the waiting room received
        self.wfile = Writer(sock, "wb", self.wbufsize)


@dataclass
class Head:
    size: int  # bytes a worker reads without waiting: the head, and the body unless it is refused unread
    expects_continue: bool = False


def parse_head(data: bytes, max_body_bytes: int) -> Head | None:
    """What the request at the start of `data` needs to arrive before a worker takes it; None: its head is
    not all here yet. A head Cheroot will refuse needs nothing more (size 0)."""
    end = HEAD_END.search(data, 0, MAX_HEAD_BYTES)
    if end is None:
        return Head(0) if len(data) >= MAX_HEAD_BYTES else None  # too big: Cheroot answers 413/414
    if end.group() != b"\r\n\r\n":
        return Head(0)
    fields = data[: end.end()].removeprefix(b"\r\n").partition(b"\r\n")[2]  # Cheroot skips one leading CRLF
    try:
        headers = HEADERS(io.BytesIO(fields), {})
        body = max(int(headers.get(b"Content-Length", 0)), 0)
    except ValueError:
        return Head(0)  # Cheroot answers 400
    if b"chunked" in headers.get(b"Transfer-Encoding", b"").lower() or body > max_body_bytes:
        body = 0  # the app refuses it (411, 413) without reading it
    return Head(end.end() + body, body > 0 and headers.get(b"Expect", b"").lower() == b"100-continue")


@dataclass
class Arrival:
    conn: HTTPConnection
    deadline: float
    head: Head | None = None


class WaitingRoom:
    """Connections whose request has not fully arrived, watched by one thread instead of a worker each.

    Edge-triggered epoll wakes us once per arrival of new bytes, and we read until the socket is empty. A
    connection leaves for a worker once its request is all here; it is closed instead when its peer hangs up
    or resets first, and (with a 408 if it had begun a request) once the server's `request_timeout` passes.
    """

    EVENTS = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLET
    TICK = 0.25  # seconds between deadline checks

    def __init__(self, server: Server):
        self.server = server
        self._epoll = select.epoll()
        self._waiting: dict[int, Arrival] = {}  # by file descriptor
        self._held = 0  # bytes received for connections not yet handed on: the memory the room holds
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="http-waiting-room", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def admit(self, conn: HTTPConnection) -> None:
        """A new connection, or a kept-alive one with bytes to read: on to a worker if its request is here."""
        conn.socket.settimeout(0)  # the waiting room never waits on a client
        arrival = Arrival(conn, time.monotonic() + self.server.request_timeout)
        self._count(len(conn.rfile.raw.received))  # the start of a pipelined request, if any
        ready = self._receive(arrival)
        if ready is False:
            self._park(arrival)
        else:
            self._send_on(conn, ready)

    def _receive(self, arrival: Arrival) -> bool | None:
        """Read what has arrived: True once the request is all here, False while not, None if it never will."""
        conn, reader = arrival.conn, arrival.conn.rfile
        while True:
            if arrival.head is None:
                arrival.head = parse_head(reader.unread(), self.server.max_body_bytes)
                if arrival.head and arrival.head.expects_continue and reader.unread_size() < arrival.head.size:
                    with suppress(OSError):  # the client sends its body only after this
                        conn.socket.send(f"{self.server.protocol} 100 Continue\r\n\r\n".encode())
            missing = (arrival.head.size if arrival.head else MAX_HEAD_BYTES) - reader.unread_size()
            if missing <= 0:
                return True
            if self._held >= self.server.max_waiting_bytes:  # a bound on memory, whatever the number of clients
                with suppress(OSError):
                    conn.socket.send(json_error(self.server.protocol, "503 Service Unavailable", DETAILS[503]))
                return None
            try:
                data = conn.socket.recv(min(missing, 65536))
            except BlockingIOError:
                return False
            except OSError:
                return None  # reset: no one to answer
            if not data:
                return None  # the client hung up before its request was whole
            reader.raw.received += data
            self._count(len(data))

    def _count(self, size: int) -> None:
        with self._lock:
            self._held += size

    def _send_on(self, conn: HTTPConnection, ready: bool | None) -> None:
        self._count(-len(conn.rfile.raw.received))
        if ready:
            self.server.dispatch(conn)
        else:
            conn.close()

    def _park(self, arrival: Arrival) -> None:
        with self._lock:
            if not self._closed:
                fd = arrival.conn.socket.fileno()
                self._waiting[fd] = arrival
                self._epoll.register(fd, self.EVENTS)  # reports bytes that came meanwhile at once
                return
        self._send_on(arrival.conn, None)

    def _leave(self, fd: int) -> HTTPConnection:
        with self._lock:
            self._epoll.unregister(fd)
            return self._waiting.pop(fd).conn

    def _run(self) -> None:
        while not self._closed:
            try:
                self._watch()
            except Exception:  # every new connection passes through here: log, never stop
                self.server.error_log("waiting room", level=logging.ERROR, traceback=True)

    def _watch(self) -> None:
        for fd, _ in self._epoll.poll(self.TICK):
            with self._lock:
                arrival = self._waiting.get(fd)
            if arrival is not None and (ready := self._receive(arrival)) is not False:
                self._send_on(self._leave(fd), ready)
        now = time.monotonic()
        with self._lock:
            late = [fd for fd, arrival in self._waiting.items() if arrival.deadline < now]
        for fd in late:
            conn = self._leave(fd)
            if conn.rfile.has_data():  # it had begun a request
                with suppress(OSError):
                    conn.socket.send(json_error(self.server.protocol, "408 Request Timeout", DETAILS[408]))
            self._send_on(conn, None)

    def close(self) -> None:
        """Stop watching and close every connection still waiting."""
        self._closed = True
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            waiting, self._waiting = self._waiting, {}
            self._epoll.close()
        for arrival in waiting.values():
            arrival.conn.close()


class Server(wsgi.Server):
    """Cheroot's WSGI server whose workers only ever read requests that have already arrived."""

    ConnectionClass = Connection
    request_timeout = 10.0  # seconds a connection may take to send its whole request (from connect or first byte)
    max_body_bytes = 1 << 20  # larger bodies are refused unread (413), so they are not waited for
    max_waiting_bytes = 32 * (max_body_bytes + MAX_HEAD_BYTES)  # beyond, the waiting room answers 503

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.waiting_room = WaitingRoom(self)

    def prepare(self) -> None:
        super().prepare()
        self.waiting_room.start()

    def process_conn(self, conn: HTTPConnection) -> None:
        # Called for every new connection and every kept-alive one with bytes to read.
        self.waiting_room.admit(conn)

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
    server.max_body_bytes = settings.max_body_bytes
    server.max_waiting_bytes = 32 * (settings.max_body_bytes + MAX_HEAD_BYTES)  # 32 whole requests at most
    return server
