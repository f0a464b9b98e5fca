"""What a person sees before the models are ready, in a real browser (Debian chromium driven by Playwright): the toy
profile's banner, and in the default profile with the models absent one panel per tab saying what it needs: the
command where the Hub is out of reach (and no red Error pills), a Download button that fetches where it answers."""

from __future__ import annotations

import pytest

from pipelines import readiness
from pipelines.core import hub as hub_client
from pipelines.core import registry, runtime
from tests.conftest import models_put_back
from tests.hublike import hub_fixture
from tests.hublike.repos import build_hub
from tests.serving import serve

pytestmark = pytest.mark.browser

hub = hub_fixture(scope="module")
MODEL_TABS = {
    "Studio": "studio",
    "Caption": "caption",
    "Search": "search",
    "Ask": "ask",
    "Chat": "chat",
    "Transcribe": "transcribe",
}
NAMED = {"transcribe": "transcribe", "chat": "chat"}  # the model a tab's panel names at least (others: the CLIP)
ERROR_PILLS = "[data-testid='status-tracker'] .error"


def test_the_toy_profile_says_what_its_models_know_and_how_to_get_real_ones(page):
    banner = page.locator("#toy-banner")
    banner.wait_for(state="visible")
    text = banner.inner_text()
    assert all(word in text for word in ("circles", "squares", "triangles", "red", "photos"))
    assert "python -m pipelines.download" in text and "python app.py" in text


@pytest.fixture
def default_app(hub, tmp_path):
    """The default profile served with an empty models directory; the cache, fallbacks and toy profile after."""
    readiness.forget()
    with models_put_back(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtime, "_settings", runtime.settings())
        runtime.configure(models_dir=tmp_path / "models")
        demo = serve("default")
        try:
            yield demo
        finally:
            demo.close()
    runtime.configure(profile="toy")


@pytest.fixture
def browser_page(page):
    """A fresh tab of the module's browser (conftest's ``page`` holds the one Playwright a process may run)."""
    tab = page.context.browser.new_page(viewport={"width": 1280, "height": 800})
    yield tab
    tab.close()


def test_offline_each_model_tab_names_its_models_and_the_command_without_error_pills(hub, default_app, browser_page):
    hub.offline = True
    hub_client.reset_probe()
    try:
        page = browser_page
        page.goto(default_app.local_url)
        for tab, key in MODEL_TABS.items():
            page.get_by_role("tab", name=tab, exact=True).click()
            panel = page.locator(f"#{key}-models")
            panel.wait_for(state="visible", timeout=60_000)
            text = panel.inner_text()
            assert "python -m pipelines.download" in text and "python app.py --models-dir" in text, (tab, text)
            assert registry.profile_default(NAMED.get(key, "search"), "default") in text
            assert not page.locator(f"#{key}-download").is_visible()  # nothing to download from here
        assert page.locator("#toy-banner").count() == 0
        assert page.locator(ERROR_PILLS).count() == 0
        assert page.locator("[data-testid='toast-body']").count() == 0
    finally:
        hub.offline = False
        hub_client.reset_probe()


def test_download_now_fetches_the_search_model_and_the_panel_goes(hub, default_app, browser_page):
    build_hub(hub.root, [registry.resolve("search", None, "default").source])
    hub_client.reset_probe()
    page = browser_page
    page.goto(default_app.local_url)
    page.get_by_role("tab", name="Search", exact=True).click()
    panel = page.locator("#search-models")
    panel.wait_for(state="visible", timeout=60_000)
    assert "clip-vit-b-32" in panel.inner_text() and "python -m pipelines.download" not in panel.inner_text()
    button = page.locator("#search-download")
    assert button.inner_text().startswith("Download now (")  # with its size
    button.click()
    panel.wait_for(state="hidden", timeout=180_000)
    assert readiness.status("search").state == readiness.READY
    assert page.locator(ERROR_PILLS).count() == 0
