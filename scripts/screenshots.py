"""Screenshots of every tab for README.md: the toy app in headless Debian chromium, each tab used once.

python scripts/screenshots.py          # writes docs/{studio,caption,search,ask,transcribe}.png
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import toyworld  # noqa: E402
from tests.serving import serve  # noqa: E402

DOCS = ROOT / "docs"
EXAMPLES = ROOT / "assets/examples"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WAIT = 120_000  # ms: the first use of a tab loads its model


def filled(page, selector: str) -> None:
    page.wait_for_function(f"() => (document.querySelector('{selector}')?.value || '').length > 0", timeout=WAIT)


def studio(page, scene: Path) -> None:
    page.locator("#studio-image input[type=file]").set_input_files(str(scene))
    page.locator("#studio-audio input[type=file]").set_input_files(str(EXAMPLES / "speech/what_color_is_the_shape.wav"))
    page.get_by_role("button", name="Run everything", exact=True).click()
    page.locator("#studio-heatmap img").first.wait_for(timeout=WAIT)


def caption(page, scene: Path) -> None:
    page.locator("#caption-image input[type=file]").set_input_files(str(EXAMPLES / "photos/cat.jpg"))
    page.get_by_role("button", name="Caption", exact=True).click()
    filled(page, "#caption-text textarea")


def search(page, scene: Path) -> None:
    page.locator("#search-query textarea").fill("a blue circle")
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator("#search-results img").first.wait_for(timeout=WAIT)


def ask(page, scene: Path) -> None:
    page.locator("#ask-image input[type=file]").set_input_files(str(scene))
    page.locator("#ask-question textarea").fill("what color is the shape?\nwhat shape is it?")
    page.get_by_role("button", name="Ask", exact=True).click()
    page.locator("#ask-heatmap img").first.wait_for(timeout=WAIT)


def transcribe(page, scene: Path) -> None:
    speech = EXAMPLES / "speech/ask_not_what_your_country_can_do_for_you.wav"
    page.locator("#transcribe-audio input[type=file]").set_input_files(str(speech))
    page.get_by_role("button", name="Transcribe", exact=True).click()
    filled(page, "#transcript textarea")


TABS = {"Studio": studio, "Caption": caption, "Search": search, "Ask": ask, "Transcribe": transcribe}


def main() -> None:
    from playwright.sync_api import sync_playwright

    scene = DOCS / "scene.png"
    toyworld.scene(toyworld.HELD_OUT_SEED + 3).image.resize((256, 256)).save(scene)  # what the toy models know
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
        scene.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
