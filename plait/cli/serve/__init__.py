"""``plait serve``: workflows over HTTP (FastAPI + uvicorn) with a live web page.

Routes: ``POST /runs`` (start; the run id comes back at once), ``GET /runs``,
``GET /runs/{id}``, ``GET /runs/{id}/events`` (server-sent events, past ones
first), ``POST /runs/{id}/approvals/{task}``, ``POST /runs/{id}/resume``,
``POST /runs/{id}/cancel``, ``GET /runs/{id}/report``, ``GET /workflows``, the
live page at ``/`` and OpenAPI docs at ``/docs``. Runs are the durable runs of
``plait run`` (``.plait/runs/<run_id>/``). Each workflow ``NAME`` is an A2A agent
too: JSON-RPC at ``/a2a/NAME/``, its card at ``/a2a/NAME/.well-known/agent-card.json``
(see :mod:`._a2a`); an A2A task id is its run's id.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from plait.errors import ConfigError

__all__ = ["create_app", "is_loopback", "serve", "serve_command"]

TOKEN_VARIABLE = "PLAIT_SERVE_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(files: Sequence[str | os.PathLike[str]], **options: Any) -> Any:
    """The FastAPI application (see :func:`plait.cli.serve._app.create_app`)."""
    from ._app import create_app as build

    return build(files, **options)


def serve(
    files: Sequence[str | os.PathLike[str]],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    backends: Mapping[str, Any] | None = None,
    max_concurrent: int = 4,
    max_body_bytes: int = 1 << 20,
) -> None:
    """Serve workflow ``files`` until interrupted.

    Raises:
        ConfigError: binding beyond loopback without a token, or a bad file.
    """
    import uvicorn

    if not is_loopback(host) and not token:
        raise ConfigError(
            f"serving on {host} (beyond this machine) needs a token: set {TOKEN_VARIABLE};"
            " every request must then send Authorization: Bearer <token>"
        )
    app = create_app(
        files,
        backends=backends,
        max_concurrent=max_concurrent,
        max_body_bytes=max_body_bytes,
        token=token,
    )
    shown = f"[{host}]" if ":" in host else host
    print(
        f"plait serve: {len(files)} workflow(s) on http://{shown}:{port}/ "
        f"(API docs at /docs; runs are kept in the state folder)",
        file=sys.stderr,
        flush=True,
    )
    # No access log: a line per request is work the server does for nobody here.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def serve_command(args: argparse.Namespace) -> int:
    """``plait serve FILE... [--host H] [--port N] [--max-runs N]``."""
    if args.max_runs < 1:
        raise ConfigError(f"--max-runs must be at least 1, got {args.max_runs}")
    serve(
        args.files,
        host=args.host,
        port=args.port,
        token=os.environ.get(TOKEN_VARIABLE) or None,
        max_concurrent=args.max_runs,
        max_body_bytes=args.max_body,
    )
    return 0
