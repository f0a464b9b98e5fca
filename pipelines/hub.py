"""The one place that talks to the Hugging Face Hub.

Loaders never download by themselves: they ask this module for a local directory. When the Hub cannot be
reached we look in the local cache only, so an offline machine gets a clear error in milliseconds instead of
half a minute of retries.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from .errors import ModelLoadError

PROBE_TIMEOUT = 3.0  # seconds to wait for a TCP connection to the Hub
PROBE_TTL = 60.0  # seconds a probe result is trusted before we look again

OFFLINE_CAUSE = "this machine cannot reach the Hugging Face Hub, and the model is not in the local cache"
OFFLINE_FIX = (
    "On a machine with network, run `python -m pipelines.download --models-dir DIR` and start the app with the "
    "same `--models-dir DIR`; or start it with `--profile toy` to use the bundled toy models"
)

_probe_lock = threading.Lock()
_probe: tuple[float, bool] | None = None  # (time of probe, reachable)


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def offline_forced() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def reachable() -> bool:
    """Whether a TCP connection to the Hub endpoint succeeds (cached for PROBE_TTL seconds)."""
    global _probe
    if offline_forced():
        return False
    with _probe_lock:
        if _probe is not None and time.monotonic() - _probe[0] < PROBE_TTL:
            return _probe[1]
        url = urlparse(_endpoint())
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            with socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT):
                ok = True
        except OSError:
            ok = False
        _probe = (time.monotonic(), ok)
        return ok


def snapshot(repo_id: str, *, allow_patterns: list[str] | None = None, cache_dir: Path | None = None) -> Path:
    """A local directory holding ``repo_id`` (downloaded if the Hub is reachable, else from the cache)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    offline = not reachable()
    try:
        path = snapshot_download(
            repo_id,
            allow_patterns=allow_patterns,
            cache_dir=str(cache_dir) if cache_dir else None,
            local_files_only=offline,
        )
    except RepositoryNotFoundError as e:
        raise ModelLoadError(
            repo_id,
            "there is no such model on the Hugging Face Hub (or it is private)",
            "Check the spelling of the id, or give the path of a local directory instead",
        ) from e
    except (LocalEntryNotFoundError, FileNotFoundError) as e:
        raise ModelLoadError(repo_id, OFFLINE_CAUSE, OFFLINE_FIX) from e
    except (HfHubHTTPError, OSError) as e:
        raise ModelLoadError(repo_id, f"the download failed ({e})", "Check the network and try again") from e
    return Path(path)
