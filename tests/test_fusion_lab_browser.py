"""The Fusion lab in a real browser: the bundled matching task trains with live loss curves, the held-out accuracy
bars and the confusion table appear, and the trained heads answer a new image and text."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def lab_page(page):
    """conftest's browser tab on the toy app, taller, on the Fusion lab."""
    page.set_viewport_size({"width": 1280, "height": 1400})
    page.get_by_role("tab", name="Fusion lab", exact=True).click()
    return page


def test_train_the_bundled_task_then_try_the_heads(lab_page):
    page = lab_page
    assert "toy-match/00.png" in page.locator("#fusion-examples").inner_text()  # the first task, ready to train
    page.get_by_role("button", name="Train", exact=True).click()
    page.locator("#fusion-loss").get_by_text("sum fusion").wait_for(timeout=120_000)  # its curve, in the legend
    page.locator("#fusion-summary").get_by_text("held-out accuracy").first.wait_for(timeout=180_000)
    summary = page.locator("#fusion-summary").inner_text()
    assert "Best: sum fusion" in summary or "Best: concat fusion" in summary
    bars = page.locator("#fusion-accuracy")
    bars.get_by_text("concat fusion").first.wait_for(timeout=30_000)  # an axis label under its bar
    assert bars.locator("svg, canvas").first.bounding_box()["height"] > 100
    legend = page.locator("#fusion-loss").inner_text()
    assert all(head in legend for head in ("image only", "text only", "late fusion"))  # every head's curve
    confusion = page.locator("#fusion-confusion").inner_text()
    assert "sum fusion" in confusion and "predicted no match" in confusion

    page.locator("#fusion-try-image input[type=file]").set_input_files(str(ROOT / "assets/examples/toy/red_circle.png"))
    page.locator("#fusion-try-image img").first.wait_for(timeout=30_000)
    page.locator("#fusion-try-text textarea").fill("a red circle")
    page.get_by_role("button", name="Predict", exact=True).click()
    page.locator("#fusion-predictions").get_by_text("sum fusion").wait_for(timeout=60_000)
    lines = [line.strip() for line in page.locator("#fusion-predictions").inner_text().splitlines() if line.strip()]
    assert lines[lines.index("sum fusion") + 1] == "match"  # head, prediction, confidence: one cell a line
