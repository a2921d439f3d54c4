"""The dashboard's HTTP server over raw sockets: what it refuses never leaves the connection open for
a smuggled request, and its action key is made per run and readable by the user only."""

from __future__ import annotations

import re
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from localcloud.__main__ import main
from localcloud.cloud import LocalCloud
from localcloud.dashboard import Dashboard
from localcloud.server import free_port

pytestmark = pytest.mark.unit

KEY = "a-key-for-this-test-only"
SMUGGLED = b"GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@dataclass
class Data:
    """Stands in for the cloud's data behind the dashboard: answers reads, records actions (an
    extension's "tasks" panel has one, cancel)."""

    actions: list[tuple[str, Any]] = field(default_factory=list)
    panels: dict[str, Any] = field(default_factory=lambda: {"tasks": None})

    def overview(self) -> dict[str, Any]:
        return {"queues": []}

    def redrive(self, name: str, message_id: str | None) -> dict[str, Any]:
        self.actions.append(("redrive", name))
        return {"moved": 0}

    def panel_action(self, panel: str, item: str, action: str, request: dict[str, Any]) -> dict[str, Any]:
        self.actions.append((action, item))
        return {"outcome": "cancelled"}


@dataclass
class Served:
    dashboard: Dashboard
    data: Data
    port: int


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LOCALCLOUD_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def served(state_dir: Path) -> Iterator[Served]:
    data = Data()
    port = free_port()
    dashboard = Dashboard(data, api_key=KEY, port=port).start()  # type: ignore[arg-type]
    try:
        yield Served(dashboard, data, port)
    finally:
        dashboard.close()


def exchange(port: int, raw: bytes) -> tuple[bytes, bool]:
    """Everything the dashboard answers to ``raw`` on one connection, and whether it closed it (a
    connection still open after 5 s would take another request)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            return received, False
        return received, True


def statuses(received: bytes) -> list[int]:
    """The status of each response (a body does not end with a line break: the next may follow it)."""
    return [int(status) for status in re.findall(rb"HTTP/1\.[01] (\d{3}) ", received)]


def test_a_refused_request_closes_its_connection_so_its_body_is_never_a_request(served: Served) -> None:
    # Given a request for another host name (a DNS-rebinding page) whose body is a request for the
    # dashboard's own name
    raw = (
        b"GET /api/overview HTTP/1.1\r\nHost: attacker.example:3001\r\n"
        b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED
    )
    # When it is sent on one keep-alive connection
    received, closed = exchange(served.port, raw)
    # Then only the refusal is answered, saying it closes, and the connection is closed
    assert statuses(received) == [421]
    assert b"\r\nConnection: close\r\n" in received
    assert closed


def test_a_refused_action_closes_its_connection(served: Served) -> None:
    # Given an action without the key, followed on the same connection by another action
    action = b"POST /api/tasks/job-1/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}"
    # When both are sent
    received, closed = exchange(served.port, action + action)
    # Then the first is refused and its connection closed: the second is never read
    assert statuses(received) == [401]
    assert b"\r\nConnection: close\r\n" in received
    assert closed
    assert served.data.actions == []


@pytest.mark.parametrize("length", [b"-1", b"+2", b"1_0", b"0x2", b"2, 2", b"two"])
def test_a_content_length_that_is_not_digits_is_400_and_closes(served: Served, length: bytes) -> None:
    # Given an action with the key and a Content-Length that is not a plain number of bytes
    raw = (
        b"POST /api/tasks/job-1/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: " + KEY.encode()
        + b"\r\nContent-Length: " + length + b"\r\n\r\n{}" + SMUGGLED
    )  # fmt: skip
    # When it is sent (a negative length once made the handler read until the client left)
    received, closed = exchange(served.port, raw)
    # Then it is refused as malformed, nothing runs, and the connection is closed
    assert statuses(received) == [400]
    assert closed
    assert served.data.actions == []


def test_two_content_lengths_are_400_and_close(served: Served) -> None:
    raw = (
        b"POST /api/tasks/job-1/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: " + KEY.encode()
        + b"\r\nContent-Length: 2\r\nContent-Length: 0\r\n\r\n{}" + SMUGGLED
    )  # fmt: skip
    received, closed = exchange(served.port, raw)
    assert (statuses(received), closed, served.data.actions) == ([400], True, [])


def test_a_chunked_body_is_refused_and_closes(served: Served) -> None:
    # Given an action whose body is framed by Transfer-Encoding, which the dashboard does not read
    raw = (
        b"POST /api/tasks/job-1/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: " + KEY.encode()
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n"
    )  # fmt: skip
    # When it is sent
    received, closed = exchange(served.port, raw)
    # Then it is refused with one answer (its chunks are never parsed as requests), and closed
    assert len(statuses(received)) == 1
    assert statuses(received)[0] in (400, 411)
    assert closed
    assert served.data.actions == []


def test_a_body_over_the_cap_is_413_and_closes(served: Served) -> None:
    raw = (
        b"POST /api/tasks/job-1/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: " + KEY.encode()
        + b"\r\nContent-Length: 5000\r\n\r\n"
    )  # fmt: skip
    received, closed = exchange(served.port, raw)
    assert statuses(received) == [413]
    assert b"\r\nConnection: close\r\n" in received
    assert closed


def test_an_accepted_action_keeps_its_connection_for_the_next_request(served: Served) -> None:
    # Given an action with the key and a read after it on the same connection
    action = (
        b"POST /api/tasks/job-1/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: " + KEY.encode()
        + b"\r\nContent-Length: 2\r\n\r\n{}"
    )  # fmt: skip
    # When both are sent, the read asking to close
    received, closed = exchange(
        served.port, action + SMUGGLED.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    )
    # Then both are answered in turn
    assert statuses(received) == [200, 200]
    assert served.data.actions == [("cancel", "job-1")]
    assert closed


def test_the_action_key_is_made_per_run() -> None:
    # Given two local clouds (not started)
    first, second = (
        LocalCloud(port=free_port(), api_port=None, dashboard_port=free_port()) for _ in range(2)
    )
    # Then each has its own unguessable dashboard key, never the old fixed one
    assert first.dashboard_key != second.dashboard_key
    assert len(first.dashboard_key) >= 32
    assert "local-api-key" not in (first.dashboard_key, second.dashboard_key)


def test_a_running_dashboard_key_is_readable_by_its_user_only_and_by_the_cli(
    served: Served, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a running dashboard, its key is in the per-user state directory, readable by the user only
    [saved] = state_dir.iterdir()
    assert saved.read_text().strip() == KEY
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_dir.stat().st_mode) & 0o077 == 0
    # When the CLI is asked for it
    code = main(["dashboard-key", "--port", str(served.port)])
    # Then it prints the key alone
    assert (code, capsys.readouterr().out) == (0, KEY + "\n")
    # And once the dashboard stops, the file is gone and the CLI says there is none
    served.dashboard.close()
    assert list(state_dir.iterdir()) == []
    assert main(["dashboard-key", "--port", str(served.port)]) == 2
    assert "no dashboard key" in capsys.readouterr().err
