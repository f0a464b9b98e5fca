"""Screenshots of every tab for README.md: the toy app in headless Debian chromium, each tab used once on what the
toy models know (a held-out toy scene, a bundled recording). It stops without a screenshot when a visible result is
wrong (the caption does not name the scene, the answer is not its colour, the transcript misquotes), so README never
shows a failure.

python scripts/screenshots.py          # writes docs/{studio,caption,search,ask,transcribe}.png
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import toyworld  # noqa: E402
from tests.serving import serve  # noqa: E402

DOCS = ROOT / "docs"
EXAMPLES = ROOT / "assets/examples"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WAIT = 120_000  # ms: the first use of a tab loads its model


def filled(page, selector: str) -> str:
    """The text a person sees in a textbox once it has some."""
    page.wait_for_function(f"() => (document.querySelector('{selector}')?.value || '').length > 0", timeout=WAIT)
    return page.locator(selector).input_value()


def shown(page, selector: str) -> str:
    page.locator(selector).first.wait_for(timeout=WAIT)
    return page.locator(selector).first.inner_text()


def check(tab: str, seen: str, *expected: str) -> None:
    """Stop (no screenshot) when a visible result is not the right answer: README must not show a failure."""
    missing = [word for word in expected if word.lower() not in seen.lower()]
    if missing:
        raise SystemExit(f"{tab}: the page shows {seen!r}, which lacks {missing}: not taking a wrong screenshot")


def studio(page, scene) -> None:
    page.locator("#studio-image input[type=file]").set_input_files(str(scene.path))
    page.locator("#studio-audio input[type=file]").set_input_files(str(EXAMPLES / "speech/what_color_is_the_shape.wav"))
    page.get_by_role("button", name="Run everything", exact=True).click()
    page.locator("#studio-heatmap img").first.wait_for(timeout=WAIT)
    check("Studio", filled(page, "#studio-caption textarea"), scene.color, scene.shape)
    check("Studio", shown(page, "#studio-answer"), scene.color)


def caption(page, scene) -> None:
    page.locator("#caption-image input[type=file]").set_input_files(str(scene.path))
    page.get_by_role("button", name="Caption", exact=True).click()
    check("Caption", filled(page, "#caption-text textarea"), scene.color, scene.shape)


def search(page, scene) -> None:
    page.locator("#search-query textarea").fill(f"a {scene.color} {scene.shape}")
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator("#search-results img").first.wait_for(timeout=WAIT)
    check("Search", shown(page, "#search-results .caption-label"), scene.color, scene.shape)


def ask(page, scene) -> None:
    page.locator("#ask-image input[type=file]").set_input_files(str(scene.path))
    page.locator("#ask-question textarea").fill("what color is the shape?\nwhat shape is it?")
    page.get_by_role("button", name="Ask", exact=True).click()
    page.locator("#ask-heatmap img").first.wait_for(timeout=WAIT)
    check("Ask", filled(page, "#ask-answer textarea"), scene.color)
    check("Ask", shown(page, "#ask-table"), scene.color, scene.shape)


def transcribe(page, scene) -> None:
    speech = EXAMPLES / "speech/ask_not_what_your_country_can_do_for_you.wav"
    page.locator("#transcribe-audio input[type=file]").set_input_files(str(speech))
    page.get_by_role("button", name="Transcribe", exact=True).click()
    check("Transcribe", filled(page, "#transcript textarea"), "ask not what your country can do for you")


TABS = {"Studio": studio, "Caption": caption, "Search": search, "Ask": ask, "Transcribe": transcribe}


def main() -> None:
    from playwright.sync_api import sync_playwright

    # A held-out scene, what the toy models know; written where the page can upload it from.
    made = toyworld.scene(toyworld.HELD_OUT_SEED + 3)
    scene = SimpleNamespace(path=DOCS / "scene.png", color=made.color, shape=made.shape)
    made.image.resize((256, 256)).save(scene.path)
    demo = serve("toy")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(demo.local_url)
            for name, use in TABS.items():
                page.get_by_role("tab", name=name, exact=True).click()
                use(page, scene)
                page.wait_for_timeout(500)  # let the last update paint
                page.screenshot(path=str(DOCS / f"{name.lower()}.png"), full_page=True)
                print("wrote", DOCS / f"{name.lower()}.png")
            browser.close()
    finally:
        demo.close()
        scene.path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
