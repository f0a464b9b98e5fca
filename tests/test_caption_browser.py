"""The Caption tab in a real browser (Debian chromium driven by Playwright): candidates, sampling, many images."""

from __future__ import annotations

import pytest

import toyworld

pytestmark = pytest.mark.browser


def test_candidates_sampling_controls_and_a_batch_with_downloads(page, tmp_path):
    scenes = toyworld.scenes(2, start_seed=toyworld.HELD_OUT_SEED + 7300)
    paths = []
    for index, scene in enumerate(scenes):
        paths.append(tmp_path / f"shape{index}.png")
        scene.image.save(paths[-1])
    page.get_by_role("tab", name="Caption", exact=True).click()
    page.get_by_role("tab", name="One image", exact=True).click()
    page.locator("#caption-image input[type=file]").set_input_files(str(paths[0]))
    page.get_by_role("button", name="Caption", exact=True).click()
    page.wait_for_function("() => document.querySelector('#caption-text textarea').value.length > 0", timeout=60_000)
    best = page.locator("#caption-text textarea").input_value()
    assert scenes[0].color in best and scenes[0].shape in best
    candidates = page.locator("#caption-candidates")
    candidates.get_by_text("CLIP similarity").first.wait_for(timeout=10_000)
    assert best in candidates.inner_text()

    page.locator("#caption-options").get_by_text("Options", exact=True).click()
    seed = page.locator("#caption-seed")
    assert not seed.is_visible()  # sampling controls show only for sampling
    page.locator("#caption-decoding").get_by_text("sampling", exact=True).click()
    seed.wait_for(state="visible", timeout=10_000)

    page.get_by_role("tab", name="Several images", exact=True).click()
    page.locator("#caption-files input[type=file]").set_input_files([str(p) for p in paths])
    page.get_by_role("button", name="Caption all", exact=True).click()
    table = page.locator("#caption-batch")
    table.get_by_text("shape1.png").first.wait_for(timeout=60_000)
    text = table.inner_text()
    assert text.index("shape0.png") < text.index("shape1.png")
    assert all(s.shape in text for s in scenes)
    for suffix in (".csv", ".json"):
        page.locator("#caption-downloads").get_by_text(suffix).first.wait_for(timeout=10_000)
