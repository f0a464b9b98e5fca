"""What a public demo must not give away: files outside its assets, access without the login, unbounded uploads."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import pytest
from gradio_client import Client, handle_file

import app
from tests.conftest import ROOT
from tests.serving import serve

EXAMPLE = ROOT / "assets/examples/photos/cat.jpg"


def status(url: str, data: bytes | None = None, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {}), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module")
def url():
    demo = serve("toy")
    yield demo.local_url.rstrip("/")
    demo.close()


def file_url(base: str, path: str) -> str:
    return f"{base}/gradio_api/file={urllib.parse.quote(path)}"


def test_the_example_assets_are_served(url):
    assert status(file_url(url, str(EXAMPLE))) == 200


@pytest.mark.parametrize(
    "path",
    [
        "../../../../../../etc/passwd",
        "/etc/passwd",
        str(ROOT / "app.py"),
        str(ROOT / "assets/models/toy/clip/open_clip_config.json"),
        str(EXAMPLE.parent / "../../../app.py"),
        str(ROOT / ".git/config"),
    ],
    ids=["relative-dotdot", "absolute", "source", "model-files", "dotdot-from-assets", "git"],
)
def test_no_other_file_can_be_fetched(url, path):
    assert status(file_url(url, path)) in (403, 404)


def test_share_is_off_unless_asked():
    assert app.parse_args([]).share is False
    assert app.parse_args(["--share"]).share is True


def test_with_a_login_nothing_is_served_to_strangers_and_the_api_works_for_the_user(tmp_path):
    demo = serve("toy", auth=app.parse_auth("stakeholder:s3cret"))
    base = demo.local_url.rstrip("/")
    try:
        assert status(f"{base}/config") == 401
        assert status(file_url(base, str(EXAMPLE))) == 401
        with pytest.raises(Exception):
            Client(demo.local_url, auth=("stakeholder", "wrong"), verbose=False)
        client = Client(demo.local_url, auth=("stakeholder", "s3cret"), verbose=False)
        assert "cpu" in client.predict(api_name="/system")
    finally:
        demo.close()


def test_uploads_over_the_limit_are_refused_before_any_model_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(app, "MAX_FILE_SIZE", "1mb")
    demo = serve("toy")
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(2_000_000))
    try:
        client = Client(demo.local_url, verbose=False)
        with pytest.raises(Exception, match="(?i)too large|exceeds|maximum"):
            client.predict(handle_file(str(big)), api_name="/caption")
    finally:
        demo.close()


def test_the_state_of_a_bounded_number_of_visitors_is_kept(toy_app):
    assert toy_app.state_session_capacity == app.MAX_SESSIONS
