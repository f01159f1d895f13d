"""The HTML report in a real browser: headless Chromium renders a tiny sweep's ``report.html``, copied
alone into an empty folder (the file must travel alone), to a screenshot that is not blank; every image
in the page is an inlined ``data:`` URI that the browser decoded; and the page reads the sweep's name and
its n* table. Skips, saying why, where no Chromium is on PATH (``.ci/run`` installs Debian's). No network.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from helpers import write_spec
from PIL import Image

from orchestrator.cli import main

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SPEC = {
    "name": "browser-report",
    "trainable": "synthetic",
    "fixed": {"epochs": 2, "rate": 3.0},
    "axes": {"size": [1, 4, 16, 64]},
    "search": {"algorithm": "grid-only"},
    "seeds": 2,
    "report_every_s": 0,
    "curves": [{"kind": "sample_complexity", "x": "size", "y": "test_loss", "threshold": 0.05}],
    "storage": {"results": "results", "tracking_uri": None},
}
PROBE = (
    "<script>addEventListener('load', () => { document.body.dataset.images = "
    "[...document.images].map(i => i.complete && i.naturalWidth > 0).join(','); });</script>"
)
"""Appended to a copy of the page: records in the DOM whether each image was decoded by the browser."""


@pytest.fixture(scope="module")
def browser() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        pytest.skip(f"no headless browser on PATH (looked for {', '.join(BROWSERS)})")
    return found


@pytest.fixture(scope="module")
def page(browser: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``report.html`` of a 4-cell synthetic sweep, alone in a folder with the probe appended."""
    tmp = tmp_path_factory.mktemp("browser")
    spec = write_spec(tmp / "spec.yaml", SPEC)
    assert main(["run", str(spec), "--results", str(tmp / "results")]) == 0
    root = tmp / "results" / SPEC["name"]
    assert main(["report", str(root)]) == 0
    alone = tmp / "alone"
    alone.mkdir()
    html = (root / "report.html").read_text()
    (alone / "report.html").write_text(html.replace("</body>", f"{PROBE}</body>"))
    return alone / "report.html"


def _chromium(browser: str, page: Path, *args: str) -> str:
    """Headless Chromium on ``page`` (no sandbox: CI runs as root; no network, no profile left)."""
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--hide-scrollbars",
            f"--user-data-dir={page.parent / 'profile'}",
            "--virtual-time-budget=5000",  # the load event has fired before the screenshot or dump
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


class _Page(HTMLParser):
    """The dumped DOM's text, its images' sources and the probe's verdict."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.images: list[str] = []
        self.decoded = ""
        self._skip = 0
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        elif tag == "body":
            self.decoded = values.get("data-images") or ""
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def test_the_report_renders_in_headless_chromium_to_a_page_that_is_not_blank(
    browser: str, page: Path
) -> None:
    shot = page.parent / "report.png"
    _chromium(browser, page, f"--screenshot={shot}", "--window-size=1280,2400")
    pixels = np.asarray(Image.open(shot).convert("L"), float)
    assert pixels.shape == (2400, 1280)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.005, "a blank or near-blank page"


def test_every_image_is_inlined_and_decoded_and_the_page_reads_the_sweep_and_its_n_star_table(
    browser: str, page: Path
) -> None:
    dom = _Page(_chromium(browser, page, "--dump-dom"))
    assert dom.images, "the report has its plots"
    assert all(src.startswith("data:image/png;base64,") for src in dom.images), [
        src[:60] for src in dom.images
    ]
    assert dom.decoded.split(",") == ["true"] * len(dom.images), dom.decoded
    text = " ".join(" ".join(dom.text).split())
    assert SPEC["name"] in text and "n* [CI]" in text and "smooth n* [CI]" in text
