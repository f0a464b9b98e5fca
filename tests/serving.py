"""Start the app on a free loopback port, as `python app.py` would, for tests that talk to it."""

from __future__ import annotations

import socket

import app
from pipelines.core import runtime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(profile: str, *, auth=None):
    """A running app (close it with .close()); models load on first request, as in production."""
    runtime.configure(profile=profile)
    demo = app.build_demo()
    app.serve(demo, host="127.0.0.1", port=free_port(), auth=auth, block=False)
    return demo
