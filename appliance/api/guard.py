"""Which names and which web pages may talk to the appliance: the Host check and CORS, around every route.

Host: without a token on loopback, a web page could read the library through a hostname it rebinds to
127.0.0.1 (DNS rebinding); the browser still sends that hostname, so only names of this appliance pass.
CORS: pages of the configured origins may call the API, never with credentials.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import socket
from collections.abc import Callable, Iterable

from ..config import Settings

PREFLIGHT_HEADERS = [
    ("Vary", "Origin"),
    ("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE"),
    ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
    ("Access-Control-Max-Age", "600"),
]


def host_name(host: str) -> str:
    """`Host` without its port and IPv6 brackets, lower-case, without a trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


@functools.lru_cache(maxsize=256)
def is_own_address(name: str) -> bool:
    """Whether an IP literal is one of this machine's addresses: only those can be bound to."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if address.is_loopback:
        return True
    if address.is_unspecified:  # 0.0.0.0 and :: can be bound, but name no machine
        return False
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((name, 0))
    except OSError:
        return False
    return True


class HostNames:
    """The names a client may use for this appliance in `Host`."""

    def __init__(self, settings: Settings):
        self.configured = {host_name(name) for name in [settings.host, *settings.allowed_hosts]}
        self.any = "*" in settings.allowed_hosts

    @functools.cached_property
    def machine(self) -> set[str]:
        # Looked up on first need, not at start-up: getfqdn() may wait on DNS.
        hostname = socket.gethostname().lower()
        short = hostname.partition(".")[0]
        return {hostname, short, short + ".local", socket.getfqdn().lower()}

    def allow(self, host: str) -> bool:
        name = host_name(host)
        return (
            self.any
            or name in self.configured
            or name == "localhost"
            or name.endswith(".localhost")
            or is_own_address(name)
            or name in self.machine
        )


def refuse(start_response: Callable, status: str, detail: str) -> list[bytes]:
    body = json.dumps({"detail": detail}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class Guard:
    """WSGI middleware: refuse foreign `Host` names (421), answer CORS preflights, mark allowed origins."""

    def __init__(self, app: Callable, settings: Settings):
        self.app = app
        self.hosts = HostNames(settings)
        self.origins = set(settings.cors_origins)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST", "")
        if host and not self.hosts.allow(host):
            detail = (
                f"This appliance does not answer to the name {host_name(host)!r}: use its address or name, or add"
                " the name to the allowed_hosts setting."
            )
            return refuse(start_response, "421 Misdirected Request", detail)
        origin = environ.get("HTTP_ORIGIN", "")
        allowed = origin.lower() in self.origins
        if environ["REQUEST_METHOD"] == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ:
            if not allowed:
                detail = f"Web pages from {origin!r} may not call this API; add the origin to cors_origins."
                return refuse(start_response, "403 Forbidden", detail)
            start_response("204 No Content", [("Access-Control-Allow-Origin", origin), *PREFLIGHT_HEADERS])
            return []
        if not self.origins:
            return self.app(environ, start_response)

        def start_with_cors(status: str, headers: list, exc_info=None):
            # Vary on every response once CORS is on, so no cache hands one origin's answer to another.
            headers = [*headers, ("Vary", "Origin")]
            if allowed:
                headers.append(("Access-Control-Allow-Origin", origin))
            return start_response(status, headers, exc_info)

        return self.app(environ, start_with_cors)
