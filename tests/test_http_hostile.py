"""Hostile or clumsy clients over real HTTP: slow and half-sent connections and bodies, malformed and smuggled
requests, foreign Host names (DNS rebinding) and cross-origin pages."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import struct
import time

import pytest
import requests

ALLOWED_ORIGIN = "http://photos.example:8080"


def address(client) -> tuple[str, int]:
    return "127.0.0.1", client.appliance.port


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass  # the server closed with our unread bytes still queued; what it sent before is kept
    return b"".join(chunks)


def raw_exchange(client, data: bytes, timeout: float = 10) -> bytes:
    """Send bytes on a new connection and read until the server closes it."""
    with socket.create_connection(address(client), timeout=timeout) as sock:
        sock.sendall(data)
        return read_until_closed(sock)


def parse(response: bytes) -> tuple[int, dict, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def assert_json_error(response: bytes, status: int) -> str:
    code, headers, body = parse(response)
    assert code == status, response[:300]
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    detail = json.loads(body)["detail"]
    assert isinstance(detail, str) and detail
    return detail


def test_idle_and_half_sent_connections_do_not_stall_other_clients(start_appliance):
    client = start_appliance(server_threads=16)
    sockets = []
    try:
        for _ in range(200):
            sockets.append(socket.create_connection(address(client), timeout=10))
        for i in range(200):
            sock = socket.create_connection(address(client), timeout=10)
            partial = [b"GE", b"GET /health HTTP/1.1\r\n", b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1"]
            sock.sendall(partial[i % 3])
            sockets.append(sock)
        started = time.monotonic()
        response = requests.get(client.url + "/health", timeout=30)
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        assert elapsed < 1.0, f"GET /health took {elapsed:.2f}s with 400 slow connections open"
        # a POST whose body is small enough to be waited for is still served
        created = client.post("/albums/create-album", json={"name": "while under siege"})
        assert created.status_code == 201, created.text
    finally:
        for sock in sockets:
            sock.close()


def test_dribbling_and_idle_connections_are_closed_at_the_deadline(client):
    client.appliance.http.request_timeout = 1.0
    idle = socket.create_connection(address(client), timeout=5)
    dribbler = socket.create_connection(address(client), timeout=0.2)
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 1000
    started = time.monotonic()
    received = b""
    for byte in request:  # slowloris: a byte every 0.2 s, which a per-read timeout never catches
        if time.monotonic() - started > 5:
            break
        try:
            dribbler.send(bytes([byte]))
            chunk = dribbler.recv(65536)  # waits up to 0.2 s: the pace of the dribble
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
        if not chunk:
            break
        received += chunk
    closed_after = time.monotonic() - started
    assert closed_after < 3, f"a dribbling connection was held {closed_after:.1f}s"
    assert "in time" in assert_json_error(received, 408)
    assert idle.recv(1) == b""  # an idle connection is closed without a word
    idle.close()
    dribbler.close()


def test_normal_clients_are_served_as_before(client):
    host, port = address(client)
    # keep-alive: two requests on one connection
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/health")
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    conn.request("GET", "/albums/view-all")
    assert first.status == 200 and json.loads(conn.getresponse().read()) == {"albums": []}
    assert conn.sock is sock
    # Expect: 100-continue: the body comes only after the server's go-ahead
    body = json.dumps({"name": "continued"}).encode()
    conn.putrequest("POST", "/albums/create-album")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(len(body)))
    conn.putheader("Expect", "100-continue")
    conn.endheaders()
    assert conn.sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    conn.sock.sendall(body)
    assert conn.getresponse().status == 201
    conn.close()

    # pipelining: two requests in one packet, two answers in order
    pipelined = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\nGET /nope HTTP/1.1\r\nHost: localhost\r\n"
    answers = raw_exchange(client, pipelined + b"Connection: close\r\n\r\n")
    assert answers.startswith(b"HTTP/1.1 200 OK") and b"HTTP/1.1 404 Not Found" in answers

    # a body sent well after its head, and one larger than what is waited for
    with socket.create_connection(address(client), timeout=10) as sock:
        body = json.dumps({"name": "late body"}).encode()
        sock.sendall(
            b"POST /albums/create-album HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        time.sleep(0.3)
        sock.sendall(body)
        assert parse(read_until_closed(sock))[0] == 201
    paths = [f"/nowhere/{i:06d}.jpg" for i in range(8000)]  # about 160 kB of JSON
    assert client.post("/images/images", json={"paths": paths}).status_code == 403
    assert {"late body", "continued"} <= {
        album["album_name"] for album in client.get("/albums/view-all").json()["albums"]
    }


def test_a_large_unread_body_is_not_drained(client):
    with socket.create_connection(address(client), timeout=5) as sock:
        sock.sendall(b"POST /nope HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000\r\n\r\n")
        sock.sendall(b"x" * 200_000)  # and no more: the answer must not wait for the other 99.8 MB
        code, headers, _ = parse(sock.recv(65536))
    assert code == 404 and headers["connection"] == "close"


SLOW_BODIES = {  # POST heads whose body then comes slowly: each once reached a worker that waited for it
    "large": b"Content-Length: 200000\r\n",  # above the 64 KiB the waiting room used to wait for
    "expect": b"Expect: 100-continue\r\nContent-Length: 20\r\n",  # the body follows our 100 Continue
    "spaced": b"Content-Length : 2000\r\n",  # spellings Cheroot accepts
    "cased": b"content-LENGTH:\t2000\r\n",
}


def start_slow_body(port: int, kind: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = b"POST /albums/create-album HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    sock.sendall(head + SLOW_BODIES[kind] + b"\r\n" + (b"" if kind == "expect" else b'{"name":'))
    return sock


def test_slow_bodies_do_not_hold_workers(start_appliance):
    client = start_appliance(server_threads=4)
    slow = {kind: [start_slow_body(client.appliance.port, kind) for _ in range(4)] for kind in SLOW_BODIES}
    try:
        time.sleep(0.3)
        started = time.monotonic()
        assert requests.get(client.url + "/health", timeout=5).status_code == 200
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"GET /health took {elapsed:.2f}s with 16 slow bodies and 4 workers"

        # the 100 Continue comes from the waiting room, which then waits for the body; once whole, it is served
        expecting = slow["expect"][0]
        assert expecting.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        expecting.sendall(b'{"name":"continued"}')
        assert parse(expecting.recv(65536))[0] == 201
        # a large body trickling in is read by the waiting room, then served whole
        large = slow["large"][0]
        rest = b'"large and slow"}'.rjust(200000 - len(b'{"name":'))
        for start in range(0, len(rest), 50000):
            large.sendall(rest[start : start + 50000])
            time.sleep(0.1)
        assert parse(large.recv(65536))[0] == 201
        assert {"continued", "large and slow"} <= {
            album["album_name"] for album in client.get("/albums/view-all").json()["albums"]
        }
    finally:
        for sock in sum(slow.values(), []):
            sock.close()


def test_a_body_over_the_limit_is_refused_at_once_unread(client):
    for expect in [b"", b"Expect: 100-continue\r\n"]:  # no 100 Continue for a body that will be refused
        with socket.create_connection(address(client), timeout=5) as sock:
            sock.sendall(
                b"POST /albums/create-album HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                + expect
                + b"Content-Length: 2000000\r\n\r\n{"
            )
            started = time.monotonic()
            response = read_until_closed(sock)
        assert time.monotonic() - started < 1
        assert "limit" in assert_json_error(response, 413)


def test_a_stalled_body_gets_a_408_and_a_reset_one_leaves_no_traceback(client, capfd):
    client.appliance.http.request_timeout = 1.0
    for length in [20, 200000]:
        with socket.create_connection(address(client), timeout=5) as sock:
            started = time.monotonic()
            sock.sendall(
                b"POST /albums/create-album HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                b'Content-Length: %d\r\n\r\n{"name":' % length
            )
            response = read_until_closed(sock)
        assert time.monotonic() - started < 3
        assert "in time" in assert_json_error(response, 408)

    for _ in range(3):
        sock = socket.create_connection(address(client), timeout=5)
        sock.sendall(
            b"POST /albums/create-album HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200000\r\n\r\n{"
        )
        time.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
        sock.close()
    time.sleep(0.5)
    assert client.get("/health").status_code == 200
    assert "Traceback" not in capfd.readouterr().err


def test_the_waiting_room_holds_a_bounded_number_of_bytes(client):
    client.appliance.http.max_waiting_bytes = 100_000
    with socket.create_connection(address(client), timeout=5) as sock:
        sock.sendall(
            b"POST /albums/create-album HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200000\r\n\r\n" + b" " * 150_000
        )
        assert "try again" in assert_json_error(read_until_closed(sock), 503)
    # what it held is given back: a body within the bound is served
    body = b'{"name": "after the flood"}'.rjust(60_000)
    response = client.post("/albums/create-album", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text


def test_sigterm_stops_promptly_with_slow_bodies_open(run_server):
    server = run_server()
    server.wait_ready()
    sockets = [start_slow_body(server.port, kind) for kind in SLOW_BODIES for _ in range(5)]
    try:
        time.sleep(0.3)
        started = time.monotonic()
        assert server.stop(signal.SIGTERM) == 0
        elapsed = time.monotonic() - started
        assert elapsed < 3, f"SIGTERM took {elapsed:.1f}s with 20 slow bodies open"
    finally:
        for sock in sockets:
            sock.close()


SMUGGLED = (
    b"POST /albums/create-album HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    b'Content-Length: 20\r\n\r\n{"name":"smuggled"} '
)


@pytest.mark.parametrize(
    "head,status",
    [
        (b"POST /albums/create-album HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", 411),
        (b"POST /albums/create-album HTTP/1.0\r\nConnection: Keep-Alive\r\nTransfer-Encoding: chunked\r\n", 411),
        (b"POST /nope HTTP/1.1\r\nContent-Length: %d\r\n" % len(SMUGGLED), 404),
    ],
)
def test_an_unread_body_is_never_taken_for_the_next_request(client, head, status):
    response = raw_exchange(client, head + b"Host: localhost\r\n\r\n" + SMUGGLED, timeout=3)
    assert response.count(b"\nHTTP/1.") + response.startswith(b"HTTP/1.") == 1, response  # one answer
    assert_json_error(response, status)
    assert parse(response)[1]["connection"] == "close"
    assert client.get("/albums/view-all").json() == {"albums": []}


@pytest.mark.parametrize(
    "request_bytes,status",
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\nHost: localhost\n\n", 400),  # bare LF
        (b"GET /health HTTP/2.0\r\n\r\n", 505),
        (b"get /health HTTP/1.1\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 413),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    ],
)
def test_cheroot_refusals_are_json(client, request_bytes, status):
    started = time.monotonic()
    assert_json_error(raw_exchange(client, request_bytes), status)
    assert time.monotonic() - started < 2  # refused at once, not after a deadline


@pytest.mark.parametrize("second", [b"2", b"22", b"-1", b" 20"])
def test_two_different_content_lengths_are_refused(client, second):
    """Which one a proxy in front would believe is anyone's guess: the body's end is not known, so nothing is
    read or done (RFC 9112 6.3). The same length given twice is one length."""
    body = b'{"name":"smuggled"}' + SMUGGLED
    head = b"POST /albums/create-album HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    lengths = b"Content-Length: 19\r\nContent-Length: " + second + b"\r\n\r\n"
    detail = assert_json_error(raw_exchange(client, head + lengths + body, timeout=3), 400)
    assert "Content-Length" in detail
    assert client.get("/albums/view-all").json() == {"albums": []}
    same = raw_exchange(
        client, head + b"Content-Length: 19\r\nContent-Length: 19\r\nConnection: close\r\n\r\n" + body[:19]
    )
    assert parse(same)[0] == 201, same[:300]


def test_only_names_of_this_appliance_are_answered(start_appliance):
    client = start_appliance(allowed_hosts=["photos.example"])
    port = client.appliance.port
    own = [f"localhost:{port}", "127.0.0.1", f"127.0.0.2:{port}", f"[::1]:{port}", "app.localhost", "LOCALHOST."]
    own += [socket.gethostname(), socket.gethostname() + ".local", "photos.example:8080"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # no packet is sent: this only picks our outgoing address
            own.append(f"{probe.getsockname()[0]}:{port}")
        except OSError:
            pass
    for host in own:
        assert client.get("/health", headers={"Host": host}).status_code == 200, host

    for host in ["rebind.attacker.example", f"rebind.attacker.example:{port}", "203.0.113.7", "[2001:db8::1]"]:
        for path in ["/health", "/images/all-images", "/", "/nope"]:
            response = client.get(path, headers={"Host": host})
            assert response.status_code == 421, (host, path)
            assert "allowed_hosts" in response.json()["detail"]
    # HTTP/1.0 without Host is fine
    assert raw_exchange(client, b"GET /health HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 OK")


def test_allowed_hosts_star_allows_any_name(start_appliance):
    client = start_appliance(allowed_hosts=["*"])
    assert client.get("/health", headers={"Host": "anything.example"}).status_code == 200


def test_cors_for_configured_origins_only(start_appliance):
    client = start_appliance(cors_origins=[ALLOWED_ORIGIN])
    other = "http://evil.example"

    response = client.get("/albums/view-all", headers={"Origin": ALLOWED_ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers

    preflight = {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST"}
    response = client.request("OPTIONS", "/albums/create-album", headers=preflight)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert set(response.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST", "PUT", "DELETE"}
    assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in response.headers

    response = client.request("OPTIONS", "/albums/create-album", headers={**preflight, "Origin": other})
    assert response.status_code == 403 and "cors_origins" in response.json()["detail"]
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]
    response = client.get("/albums/view-all", headers={"Origin": other})
    assert response.status_code == 200
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


def test_without_cors_origins_preflights_are_refused(client):
    headers = {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST"}
    assert client.request("OPTIONS", "/albums/create-album", headers=headers).status_code == 403
    response = client.get("/albums/view-all", headers={"Origin": ALLOWED_ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers
