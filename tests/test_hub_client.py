"""pipelines.core.hub against the Hub look-alike: through a proxy, around it (NO_PROXY), offline by choice or by
necessity, at a pinned revision, and with the Hub's refusals turned into our messages."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pytest

from pipelines.core import checkpoints, registry
from pipelines.core import hub as hub_client
from pipelines.core.errors import ModelLoadError
from tests.hublike import PROXY_ENV, client_pointed_at, hub_fixture, hub_lookalike, refresh_client, write_repo
from tests.hublike.proxy import forward_proxy

hub = hub_fixture()

REPO = "acme/captioner"
WEIGHTS = b"\x00\x01" * 3000  # a stand-in for model.safetensors, served through the LFS redirect
MAIN = {"config.json": '{"model_type": "blip"}', "pytorch_model.bin": WEIGHTS}
CONVERTED = {"config.json": '{"model_type": "blip", "converted": true}', "model.safetensors": WEIGHTS[::-1]}
HIDDEN_HUB = "hub.lookalike.invalid"  # a name this machine cannot resolve; only the proxy knows where it is


def _write(root: Path) -> None:
    write_repo(root, REPO, MAIN)
    write_repo(root, REPO, CONVERTED, revision="refs/pr/3")


@pytest.fixture
def repo(hub):
    _write(hub.root)
    return REPO


@contextlib.contextmanager
def environment(**values: str | None):
    """Set (or, with None, unset) environment variables for the block, with the Hub client refreshed both ways."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
        refresh_client()
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
        refresh_client()


def proxies(url: str, lower: bool = False, **others: str) -> dict[str, str]:
    names = {"HTTP_PROXY": url, "HTTPS_PROXY": url, **others}
    return {(name.lower() if lower else name): value for name, value in names.items()}


@pytest.mark.parametrize("variables", ["HTTP(S)_PROXY", "all_proxy"])
def test_a_hub_reached_only_through_a_proxy_is_online_and_downloads_through_it(variables):
    with tempfile.TemporaryDirectory() as tmp, forward_proxy() as proxy:
        _write(Path(tmp) / "repos")
        settings = proxies(proxy.url) if variables == "HTTP(S)_PROXY" else {"all_proxy": proxy.url}
        with hub_lookalike(Path(tmp) / "repos", public_host=HIDDEN_HUB) as hidden:
            proxy.hosts[HIDDEN_HUB] = "127.0.0.1"
            with client_pointed_at(hidden.url, Path(tmp) / "home"), environment(**settings):
                assert hub_client.reachable()  # a direct TCP probe would fail: the name does not even resolve
                path = hub_client.snapshot(REPO)
                assert (path / "config.json").read_text() == MAIN["config.json"]
                assert (path / "pytorch_model.bin").read_bytes() == WEIGHTS
    through = [target for _, target in proxy.forwarded]
    assert any(f"{HIDDEN_HUB}:" in target and "/resolve/" in target for target in through)
    assert any("/lfs/" in target for target in through)  # the redirected weights came through it too


def test_an_https_hub_is_probed_through_a_tunnel_of_the_proxy(hub):
    from huggingface_hub import constants

    port = hub.url.rsplit(":", 1)[1]
    plain = constants.ENDPOINT
    with forward_proxy(hosts={HIDDEN_HUB: "127.0.0.1"}) as proxy, environment(**proxies(proxy.url, lower=True)):
        constants.ENDPOINT = f"https://{HIDDEN_HUB}:{port}"
        try:
            hub_client.reachable()  # the look-alike speaks no TLS, so the answer is no: the route is what we check
        finally:
            constants.ENDPOINT = plain
    assert proxy.forwarded[:1] == [("CONNECT", f"{HIDDEN_HUB}:{port}")]


@pytest.mark.parametrize("lower", [False, True], ids=["upper-case", "lower-case"])
def test_no_proxy_sends_the_hub_around_the_proxy(hub, repo, lower):
    with forward_proxy() as proxy, environment(**proxies(proxy.url, lower, NO_PROXY="localhost,127.0.0.1")):
        path = hub_client.snapshot(REPO)
    assert (path / "config.json").read_text() == MAIN["config.json"]
    assert proxy.forwarded == []
    assert hub.paths("/resolve/")


def test_a_proxy_that_is_down_means_offline_with_the_offline_message(hub, repo):
    with forward_proxy() as proxy:
        dead = proxy.url
    with environment(**proxies(dead)), pytest.raises(ModelLoadError) as error:
        hub_client.snapshot(REPO)
    assert error.value.cause == hub_client.OFFLINE_CAUSE
    assert hub.requests == []


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_mode_uses_the_cache_and_nothing_else(hub, repo, variable):
    cached = hub_client.snapshot(REPO)
    asked = len(hub.requests)
    with environment(**{variable: "1"}):
        assert hub_client.snapshot(REPO) == cached
        assert hub_client.list_files(REPO) is None  # the caller falls back to what the cache holds
        write_repo(hub.root, "acme/never-fetched", MAIN)
        with pytest.raises(ModelLoadError) as error:
            hub_client.snapshot("acme/never-fetched")
    assert len(hub.requests) == asked  # not one request while offline
    assert (error.value.cause, error.value.fix) == (hub_client.OFFLINE_CAUSE, hub_client.offline_fix())
    assert "--profile toy" not in error.value.fix  # these tests run in the toy profile: no advice to switch to it


def test_a_hub_that_refuses_connections_gives_the_offline_message(hub, repo):
    cached = hub_client.snapshot(REPO)
    hub.offline = True
    assert hub_client.snapshot(REPO) == cached  # what was fetched still loads
    with pytest.raises(ModelLoadError) as error:
        hub_client.snapshot(REPO, revision="refs/pr/3")
    assert error.value.cause == hub_client.OFFLINE_CAUSE


def test_the_hub_going_away_after_the_probe_still_gives_the_offline_message(hub, repo):
    assert hub_client.reachable()
    hub.offline = True
    assert hub_client.list_files(REPO) is None
    with pytest.raises(ModelLoadError) as error:
        hub_client.snapshot(REPO)
    assert error.value.cause == hub_client.OFFLINE_CAUSE


def test_a_pinned_revision_downloads_that_revisions_files(hub, repo, monkeypatch):
    data = registry._data()
    entry = {"backend": "blip", "source": REPO, "revision": "refs/pr/3"}
    pinned = {**data, "models": {**data["models"], "caption": {**data["models"]["caption"], "pinned": entry}}}
    monkeypatch.setattr(registry, "_data", lambda: pinned)
    spec = registry.resolve("caption", "pinned", "default")
    assert spec.revision == "refs/pr/3"
    path = checkpoints.checkpoint_dir(spec, ["*.json", "*.safetensors", "*.bin"])
    assert (path / "config.json").read_text() == CONVERTED["config.json"]
    assert (path / "model.safetensors").read_bytes() == CONVERTED["model.safetensors"]
    assert not (path / "pytorch_model.bin").exists()  # main's weights are not fetched
    assert hub.paths("refs%2Fpr%2F3") and not hub.paths("/revision/main")
    assert hub_client.list_files(REPO, revision="refs/pr/3") == sorted(CONVERTED)


def test_a_revision_can_be_a_commit(hub, repo):
    commit = hub.commit(REPO, "refs/pr/3")
    assert (hub_client.snapshot(REPO, revision=commit) / "model.safetensors").is_file()
    assert (hub_client.snapshot(REPO) / "pytorch_model.bin").is_file()  # and main is still main


def test_an_unknown_repo_is_no_such_model(hub, repo):
    with pytest.raises(ModelLoadError) as error:
        hub_client.snapshot("acme/no-such-model")
    assert error.value.cause == hub_client.NO_SUCH_MODEL
    with pytest.raises(ModelLoadError, match="no such model"):
        hub_client.list_files("acme/no-such-model")


def test_an_unknown_revision_is_named_in_the_error(hub, repo):
    for call in (hub_client.snapshot, hub_client.list_files):
        with pytest.raises(ModelLoadError) as error:
            call(REPO, revision="refs/pr/77")
        assert "refs/pr/77" in error.value.cause and REPO in error.value.cause
        assert "revision" in error.value.fix


def test_a_gated_repo_says_how_to_get_access(hub, repo):
    write_repo(hub.root, "acme/gated", MAIN)
    (hub.root / "acme/gated/.gated").touch()
    with pytest.raises(ModelLoadError) as error:
        hub_client.snapshot("acme/gated")
    assert "gated" in error.value.cause and "log in" in error.value.fix


def test_the_fixture_leaves_no_proxy_or_offline_setting_behind(hub):
    assert not any(os.environ.get(name) for name in PROXY_ENV)
    assert not hub_client.offline_forced()
