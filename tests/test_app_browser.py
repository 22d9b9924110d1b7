"""The app in a real browser: Debian chromium driven by Playwright (skipped when either is missing)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"Debian chromium not found at {CHROMIUM} (apt-get install -y chromium)"
)
playwright_sync = pytest.importorskip("playwright.sync_api")
pytest.importorskip("gradio")

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def page():
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        try:
            yield page
        finally:
            browser.close()


def test_compare_then_kernels(url, page, tmp_path):
    rng = np.random.default_rng(2)
    image = tmp_path / "input.png"
    Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(image)

    page.goto(url)
    page.locator("input[type=file]").first.set_input_files(str(image))
    page.get_by_label("SRResNet (full precision)").uncheck()  # leaves bicubic + FRBC: two methods
    page.get_by_role("button", name="Run").click()

    results = page.locator("#results img")
    results.nth(1).wait_for()
    assert results.count() == 2
    metrics = page.locator("#metrics")
    page.wait_for_function("document.querySelector('#metrics').innerText.includes('FRBC (FRB on SRResNet)')")
    assert "Bicubic" in metrics.inner_text()
    status = page.locator("#status textarea").input_value()
    assert status == "ok" or status.startswith("•")  # notices, e.g. weights missing

    crops = page.locator("#crops")
    crops.get_by_text(re.compile(r"HR · x=\d+ y=\d+ size=48")).first.wait_for()
    size = page.locator("#crop-size input[type=range]")
    box = size.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.1, box["y"] + box["height"] / 2)  # a smaller region
    crops.get_by_text(re.compile(r"HR · x=\d+ y=\d+ size=(?!48)\d+")).first.wait_for()
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)

    page.get_by_role("tab", name="Kernels").click()
    page.locator("#kernel-figure img").wait_for()
    page.get_by_text("FRB improvement (%)").first.wait_for()
    page.screenshot(path=str(tmp_path / "kernels.png"), full_page=True)

    # the Models table is filled at page load; waiting for it also means no handler is still
    # running when the server closes (torch in a dying worker thread aborts the interpreter)
    page.get_by_role("tab", name="Models").click()
    page.wait_for_function("document.querySelector('#models').innerText.includes('frbt')")
    for plot in ("#plot-ops", "#plot-size"):  # the PSNR vs cost scatter plots are drawn
        page.locator(f"{plot} canvas, {plot} svg").first.wait_for()
    page.wait_for_timeout(1000)  # let the table finish fading in
    page.screenshot(path=str(tmp_path / "models.png"), full_page=True)
    assert all((tmp_path / f"{name}.png").stat().st_size > 0 for name in ("compare", "kernels", "models"))


def test_an_error_stays_in_the_status_box(url, page):
    page.goto(url)
    page.get_by_role("button", name="Run").click()  # no image
    page.wait_for_function("document.querySelector('#status textarea').value.startsWith('error: ')")
    assert page.locator("#status textarea").input_value() == "error: upload an image, paste one or pick an example first"
