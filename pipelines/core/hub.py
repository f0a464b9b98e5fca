"""The one place that talks to the Hugging Face Hub.

Loaders never download by themselves: they ask this module for a local directory (``snapshot``) or a repo's file
list (``list_files``), at the revision the registry pins (a commit, or a branch such as ``refs/pr/3``; main if none).

Before the first download we probe the Hub once (cached for a minute) through the same HTTP client, and so the same
proxy settings, that huggingface_hub downloads with: ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` and their
``NO_PROXY`` exceptions, upper or lower case. A machine that reaches the Hub only through a proxy is online; one that
reaches it by no route, or that sets ``HF_HUB_OFFLINE=1``, looks in the local cache only, so it gets a clear error in
seconds instead of a minute of retries.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from .errors import ModelLoadError

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 3.0  # seconds to wait for the Hub (or the proxy) to connect and answer
PROBE_TTL = 60.0  # seconds a probe result is trusted before we look again

OFFLINE_CAUSE = "this machine cannot reach the Hugging Face Hub, and the model is not in the local cache"
OFFLINE_FIX = (
    "On a machine with network, run `python -m pipelines.download --models-dir DIR` and start the app with the "
    "same `--models-dir DIR`"
)
TOY_FIX = "; or start it with `--profile toy` to use the bundled toy models"  # said only outside the toy profile


def offline_fix() -> str:
    from . import runtime

    return OFFLINE_FIX + ("" if runtime.settings().profile == "toy" else TOY_FIX)


NO_SUCH_MODEL = "there is no such model on the Hugging Face Hub (or it is private)"
NO_SUCH_MODEL_FIX = "Check the spelling of the id, or give the path of a local directory instead"

_TRUE = {"1", "true", "yes", "on"}
_probe_lock = threading.Lock()
_probe: tuple[float, bool] | None = None  # (time of probe, reachable)


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def offline_forced() -> bool:
    """Whether the user asked for the cache only (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``).

    huggingface_hub reads these once, at import, and then refuses every request; we also read them now, so setting
    one in a running process takes effect too.
    """
    from huggingface_hub import constants

    env = (os.environ.get(name, "").strip().lower() for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(value in _TRUE for value in env) or constants.HF_HUB_OFFLINE


def reachable() -> bool:
    """Whether the Hub answers, through a proxy where the environment names one (cached for PROBE_TTL seconds)."""
    global _probe
    if offline_forced():
        return False
    with _probe_lock:
        if _probe is not None and time.monotonic() - _probe[0] < PROBE_TTL:
            return _probe[1]
        ok = _answers(_endpoint())
        _probe = (time.monotonic(), ok)
        return ok


def _answers(url: str) -> bool:
    """One HEAD request to ``url`` through huggingface_hub's shared HTTP client: its transport, its proxy choice."""
    import httpx2  # huggingface_hub's HTTP library
    from huggingface_hub import get_session

    try:
        response = get_session().head(url, timeout=PROBE_TIMEOUT, follow_redirects=False)
    except (httpx2.HTTPError, OSError):  # refused, timed out, proxy refused the tunnel, name not resolved
        return False
    # 407: the proxy wants credentials we lack; 5xx: a proxy (or the Hub) says the Hub is out of reach
    return response.status_code != 407 and response.status_code < 500


def reset_probe() -> None:
    """Forget the last probe (after the network or the proxy settings changed)."""
    global _probe
    with _probe_lock:
        _probe = None


def _mark_unreachable() -> None:
    global _probe
    with _probe_lock:
        _probe = (time.monotonic(), False)


def snapshot(
    repo_id: str, *, revision: str | None = None, allow_patterns: list[str] | None = None, cache_dir: Path | None = None
) -> Path:
    """A local directory holding ``repo_id`` at ``revision`` (default: main): downloaded if the Hub is reachable,
    else from the cache; only the files matching ``allow_patterns`` when given."""
    import httpx2
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline = not reachable()
    try:
        path = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=allow_patterns,
            cache_dir=str(cache_dir) if cache_dir else None,
            local_files_only=offline,
        )
    except (LocalEntryNotFoundError, FileNotFoundError) as e:
        if not offline:  # it was reachable a moment ago: look again next time rather than in a minute
            reset_probe()
        raise ModelLoadError(_named(repo_id, revision), OFFLINE_CAUSE, offline_fix()) from e
    except HfHubHTTPError as e:
        raise _hub_error(repo_id, revision, e, "the download failed") from e
    except httpx2.HTTPError as e:  # e.g. a proxy that refused the tunnel half-way
        _mark_unreachable()
        log.warning("downloading %r failed: %s: %s", repo_id, type(e).__name__, e)
        raise ModelLoadError(
            _named(repo_id, revision),
            "the download failed (a network error)",
            "Check the network (and HTTPS_PROXY / NO_PROXY if you use a proxy) and try again",
        ) from e
    except OSError as e:  # a short read, a full disk
        log.warning("downloading %r failed: %s: %s", repo_id, type(e).__name__, e)
        raise ModelLoadError(
            _named(repo_id, revision),
            "the download failed (a read or write error)",
            "Check the network and the free disk space, and try again",
        ) from e
    return Path(path)


def list_files(repo_id: str, *, revision: str | None = None) -> list[str] | None:
    """The file paths in ``repo_id`` at ``revision`` (default: main), or None when the Hub cannot be reached (the
    caller then uses what the local cache holds). Loaders list a repo to fetch one weight format, not all of them."""
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if not reachable():
        return None
    try:  # the model info lists every file in one request, and fails at once (no retries) when the Hub is gone
        info = HfApi().model_info(repo_id, revision=revision, timeout=PROBE_TIMEOUT * 10)
    except HfHubHTTPError as e:
        raise _hub_error(repo_id, revision, e, "listing its files failed") from e
    except (httpx2.TransportError, OfflineModeIsEnabled, OSError):
        _mark_unreachable()
        return None
    return [sibling.rfilename for sibling in info.siblings or []]


def _named(repo_id: str, revision: str | None) -> str:
    return f"{repo_id}@{revision}" if revision else repo_id


def _hub_error(repo_id: str, revision: str | None, error: Exception, doing: str) -> ModelLoadError:
    """The ModelLoadError for an error the Hub answered with (no such repo, revision or access)."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(error, RevisionNotFoundError):
        return ModelLoadError(
            _named(repo_id, revision),
            f"the Hub repo {repo_id} has no revision {revision!r}",
            "Check the revision (a branch such as main or refs/pr/N, a tag or a commit) in the registry entry",
        )
    if isinstance(error, GatedRepoError):
        return ModelLoadError(
            repo_id,
            "the model is gated: its owners grant access to logged-in users who accept its terms",
            "Accept the terms on its Hub page and log in with `hf auth login`, or choose another model",
        )
    if isinstance(error, RepositoryNotFoundError):
        return ModelLoadError(repo_id, NO_SUCH_MODEL, NO_SUCH_MODEL_FIX)
    status = getattr(getattr(error, "response", None), "status_code", None)
    return ModelLoadError(
        _named(repo_id, revision),
        f"{doing} (HTTP {status} from the Hub)",
        "Try again later; if it persists, download the model on another machine "
        "(`python -m pipelines.download --models-dir DIR`)",
    )
