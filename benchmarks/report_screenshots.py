"""Full-page screenshots of report pages (or of the documentation site's pages) in headless Chromium, as
a reader at a given width sees them.

    .venv/bin/python benchmarks/report_screenshots.py --out /tmp/shots reports/mnist1d_mlp.html [more.html ...]
                                                       [--width 1300] [--element fig-methods-1 ...]
    .venv/bin/python benchmarks/report_screenshots.py --out /tmp/shots --height 1100 site/index.html \
        site/reference/configuration/index.html          # after `make docs`: index.png, configuration.png

Writes <out>/<page>.png (the whole page, beyond the window) for each HTML file, and with --element
<out>/<page>-<id>.png of each element with that id (a figure, a table's container), and prints, per
page, what a reader would trip over: figures or tables wider than the page, browser errors, and any
request the page made to the network (a self-contained report makes none). It is a look, not a
test: the checks that must hold are in tests/report and tests/e2e. Needs Debian's chromium and
chromium-driver (selenium is in the environment).
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
import tempfile
from pathlib import Path

# What a reader would trip over, read in the page: elements wider than the content, by id.
CHECK_SCRIPT = """
const page = document.documentElement.clientWidth;
const wide = Array.from(document.querySelectorAll('figure img, table.lth-table, .lth-table-wrap'))
  .filter(e => e.closest('.lth-table-wrap') === null || e.classList.contains('lth-table-wrap'))
  .filter(e => e.getBoundingClientRect().right > page + 1)
  .map(e => (e.closest('[id]') || e).id);
const requests = performance.getEntriesByType('resource').map(r => r.name).filter(n => !n.startsWith('data:'));
return {width: page, height: document.documentElement.scrollHeight, wide: wide, requests: requests,
        figures: document.querySelectorAll('figure').length, tables: document.querySelectorAll('table').length};
"""


def driver_for(width: int, profile: str):
    """A headless Chromium of `width` CSS pixels, cut off from the network's background traffic."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
                 f"--window-size={width},1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def capture(driver, path: Path, clip: dict | None = None) -> None:
    """The whole page (or `clip`) as one PNG, through Chromium's DevTools capture beyond the window."""
    if clip is None:
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"]}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                             "clip": {**clip, "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))


def element_clip(driver, element_id: str) -> dict | None:
    box = driver.execute_script(
        "const e = document.getElementById(arguments[0]); if (!e) return null;"
        "const r = e.getBoundingClientRect();"
        "return {x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height};",
        element_id)
    return box if box and box["width"] > 0 and box["height"] > 0 else None


def shot_name(page: Path) -> str:
    """The PNG's name: the page's, or its folder's for a site page (site/reference/cli/index.html: cli)."""
    return page.parent.name if page.stem == "index" and page.parent.name != "site" else page.stem


def screenshot(pages: list[Path], out: Path, width: int = 1300, elements: tuple[str, ...] = (),
               height: int | None = None) -> dict[str, dict]:
    """Screenshot each page (and its `elements`) into `out`, the whole page or its first `height` pixels;
    what each page's check found, by page name."""
    out.mkdir(parents=True, exist_ok=True)
    found = {}
    with tempfile.TemporaryDirectory() as profile:
        driver = driver_for(width, profile)
        try:
            driver.execute_cdp_cmd("Network.enable", {})
            driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
                "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
            for page in pages:
                driver.get(page.resolve().as_uri())
                check = driver.execute_script(CHECK_SCRIPT)
                name = shot_name(page)
                capture(driver, out / f"{name}.png", None if height is None else
                        {"x": 0, "y": 0, "width": width, "height": height})
                shots = [str(out / f"{name}.png")]
                for element in elements:
                    clip = element_clip(driver, element)
                    if clip:
                        capture(driver, out / f"{name}-{element}.png", clip)
                        shots.append(str(out / f"{name}-{element}.png"))
                check["errors"] = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
                check["screenshots"] = shots
                found[name] = check
        finally:
            driver.quit()
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/report_screenshots.py", description=__doc__.splitlines()[0])
    p.add_argument("pages", nargs="+", type=Path, help="report HTML files")
    p.add_argument("--out", required=True, type=Path, help="folder for the PNGs")
    p.add_argument("--width", type=int, default=1300, help="window width in CSS pixels")
    p.add_argument("--element", action="append", default=[], help="also this element's own PNG (repeatable)")
    p.add_argument("--height", type=int, help="only the top of each page, this many CSS pixels high")
    a = p.parse_args(argv)
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        print("needs chromium and chromedriver on PATH", file=sys.stderr)
        return 2
    found = screenshot(a.pages, a.out, a.width, tuple(a.element), a.height)
    print(json.dumps(found, indent=1))
    return 1 if any(f["wide"] or f["errors"] or f["requests"] for f in found.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
