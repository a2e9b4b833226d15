"""Shared fixtures: network blocked by default, one real local model per session."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded(real: Any) -> Any:
    def connect(self: socket.socket, address: Any) -> Any:
        if not _is_local(address):
            raise OSError(
                f"network access blocked in tests (tried {address!r}); "
                "mark the test with @pytest.mark.network to allow it"
            )
        return real(self, address)

    return connect


@pytest.fixture(autouse=True)
def _block_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("network"):
        return
    monkeypatch.setattr(socket.socket, "connect", _guarded(_real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded(_real_connect_ex))


@pytest.fixture(scope="session")
def local_backend() -> Any:
    """The embedded default model, loaded once for the whole session."""
    from plait.backends import LocalBackend

    backend = LocalBackend(n_ctx=2048)
    backend.load()
    return backend
