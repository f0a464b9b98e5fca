"""A Hub look-alike for tests: a loopback server, and the switches that point the installed huggingface_hub at it.

    from tests.hublike import hub_fixture, write_repo

    hub = hub_fixture()                      # a pytest fixture: the server, the client pointed at it, a fresh cache

    def test_download(hub):
        write_repo(hub.root, "owner/name", {"config.json": b"{}", "model.safetensors": weights})
        path = huggingface_hub.snapshot_download("owner/name")

Pointing an already-imported huggingface_hub elsewhere takes more than ``HF_ENDPOINT``: the library reads its
settings into ``huggingface_hub.constants`` once, at import (see ``client_pointed_at``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from .server import HubLookalike, revision_dirname, write_repo

__all__ = [
    "HubLookalike",
    "client_pointed_at",
    "hub_fixture",
    "hub_lookalike",
    "refresh_client",
    "revision_dirname",
    "run_download",
    "write_repo",
]

# Environment variables the client reads that must not leak in from the machine running the tests.
# The proxy variables are cleared too, so the look-alike on loopback is reached directly unless a test sets them.
PROXY_ENV = tuple(
    name for base in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY") for name in (base, base.lower())
)
_CLEARED_ENV = (
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_ASSETS_CACHE",
    "HUGGINGFACE_CO_STAGING",
    *PROXY_ENV,
)


@contextlib.contextmanager
def hub_lookalike(root: Path, public_host: str | None = None) -> Iterator[HubLookalike]:
    """A running look-alike serving the repos under ``root`` (see ``tests/hublike/server.py`` for the layout).

    ``public_host``: the host name in its URLs (default 127.0.0.1), e.g. one only a test proxy resolves."""
    hub = HubLookalike(Path(root), public_host=public_host)
    try:
        yield hub
    finally:
        hub.close()


@contextlib.contextmanager
def client_pointed_at(url: str, home: Path) -> Iterator[None]:
    """Point huggingface_hub (already imported or not) at ``url`` with its cache under ``home``; restore after.

    Sets ``HF_ENDPOINT``/``HF_HOME``/``HF_HUB_CACHE`` for code that reads the environment, unsets the offline, token
    and proxy variables (a test that wants a proxy sets them inside, then calls ``refresh_client()``), and patches
    what the library froze at import: ``constants.ENDPOINT``, ``HUGGINGFACE_CO_URL_TEMPLATE`` (hf_hub_download builds
    URLs from it), the cache and token paths, ``HF_HUB_OFFLINE``, and the endpoint of the module-level ``HfApi``
    behind ``huggingface_hub.model_info`` and friends. It also drops the shared HTTP session (it read the proxy
    variables when it was made) and our own reachability probe, on the way in and out.
    """
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _cache_manager, close_session

    home = Path(home)
    cache = home / "hub"
    cache.mkdir(parents=True, exist_ok=True)
    env = {"HF_ENDPOINT": url, "HF_HOME": str(home), "HF_HUB_CACHE": str(cache)}
    constant_values = {
        "ENDPOINT": url.rstrip("/"),
        "HUGGINGFACE_CO_URL_TEMPLATE": url.rstrip("/") + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HUGGINGFACE_HUB_CACHE": str(cache),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
    }
    saved_env = {name: os.environ.get(name) for name in (*env, *_CLEARED_ENV)}
    saved_constants = {name: getattr(constants, name) for name in constant_values if hasattr(constants, name)}
    saved_api_endpoint = hf_api.api.endpoint
    saved_cache_manager = _cache_manager.HF_HUB_CACHE
    try:
        for name in _CLEARED_ENV:
            os.environ.pop(name, None)
        os.environ.update(env)
        for name, value in constant_values.items():
            setattr(constants, name, value)
        hf_api.api.endpoint = url.rstrip("/")
        _cache_manager.HF_HUB_CACHE = str(cache)
        _fresh_connections(close_session)
        yield
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for name in constant_values:
            if name in saved_constants:
                setattr(constants, name, saved_constants[name])
            elif hasattr(constants, name):
                delattr(constants, name)
        hf_api.api.endpoint = saved_api_endpoint
        _cache_manager.HF_HUB_CACHE = saved_cache_manager
        _fresh_connections(close_session)


def refresh_client() -> None:
    """Make the next request read the environment afresh: huggingface_hub's shared HTTP client picks its proxies
    when it is made, and pipelines.core.hub remembers whether the Hub answered. Call it after changing proxy
    variables."""
    from huggingface_hub.utils import close_session

    _fresh_connections(close_session)


def _fresh_connections(close_session) -> None:
    """Forget pooled connections and proxy settings, and the app's cached "is the Hub reachable" answer."""
    close_session()
    try:
        from pipelines.core import hub
    except ImportError:
        return
    reset = getattr(hub, "reset_probe", None)
    if reset is not None:
        reset()
    else:
        hub._probe = None


def hub_fixture(root: Path | None = None, scope: str = "function"):
    """A pytest fixture yielding a running ``HubLookalike`` with the client pointed at it and an empty cache.

    Repos are read from ``root`` (default: a fresh temporary directory, at ``hub.root``; add repos with
    ``write_repo(hub.root, ...)``). Assign it to a name in a test module or conftest: ``hub = hub_fixture()``.
    """

    @pytest.fixture(scope=scope)
    def _fixture():
        with tempfile.TemporaryDirectory(prefix="hublike-") as tmp:
            repos = Path(root) if root is not None else Path(tmp) / "repos"
            repos.mkdir(parents=True, exist_ok=True)
            with hub_lookalike(repos) as hub, client_pointed_at(hub.url, Path(tmp) / "hf-home"):
                hub.home = Path(tmp) / "hf-home"
                yield hub

    return _fixture


def run_download(hub: HubLookalike, home: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m pipelines.download ARGS` in a fresh process, pointed at ``hub`` as a user's shell would point it
    (HF_ENDPOINT), with ``home`` as its HF_HOME and none of this process's HF_/MM_ settings."""
    from pipelines.core.registry import PROJECT_ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MM_"))}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1")
    return subprocess.run(
        [sys.executable, "-m", "pipelines.download", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
