"""Free ports, waiting for services on this machine and the Airflow REST client: one
implementation for the cluster (``deploy/services.py``, ``deploy/checks.py``), the container
check (``deploy/docker/stack.py``) and the tests' servers (``tests/servers.py``). Standard library
only; every address is 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(condition: Callable[[], T], timeout: float, what: str, *, interval: float = 1.0,
             alive: Callable[[], Any] | None = None) -> T:
    """Poll ``condition`` until it returns something true, and return that.

    An ``OSError`` (connection refused, an HTTP error) or ``ValueError`` (a half-written answer)
    counts as not yet. ``alive``, called before each try, may raise to stop waiting at once
    (a service that died).

    Raises:
        TimeoutError: nothing true after ``timeout`` seconds, naming ``what``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        try:
            value = condition()
            if value:
                return value
        except (OSError, ValueError):
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_for_port(port: int, timeout: float = 30, what: str | None = None) -> None:
    """Wait until something listens on 127.0.0.1:``port``."""
    wait_for(lambda: port_open(port), timeout, what or f"something listening on 127.0.0.1:{port}", interval=0.1)


class Api:
    """The Airflow REST API with a bearer token.

    A request may wait ``timeout`` seconds for its answer: far longer than an api-server on SQLite
    may wait for the database's write lock (etl/runtime/sqlite.py), so a busy machine, where a POST was
    seen taking over 30 s, gets a slow answer and not a client-side timeout.
    """

    timeout: float = 180

    def __init__(self, base: str):
        self.base, self.token = base, None

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def get(self, path: str) -> tuple[int, Any]:
        return self.call("GET", path)

    def login(self, password: str) -> None:
        status, body = self.call("POST", "/auth/token", {"username": "admin", "password": password})
        if status != 201:
            raise RuntimeError(f"/auth/token: {status} {body}")
        self.token = body["access_token"]
