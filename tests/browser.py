"""Open a report page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright)
and read what a person would see. Also a script, to look at a page:

    python3 tests/browser.py results/index.html --screenshot page.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# as root, in a sandbox with no network: no sandboxing, no background connections
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def check_page(page_path: Path, cells=(), screenshot: Path | None = None) -> dict:
    """Load page_path from disk. Returns console_errors (console errors and failed requests),
    images [(src, naturalWidth)], sections (data-dataset of each section), and cells: for each
    (dataset, first header, row label, column header) the text of that table cell ("" if
    absent)."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            page.goto(Path(page_path).resolve().as_uri(), wait_until="load")
            page.wait_for_function("Array.from(document.images).every(i => i.complete)")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")
            sections = page.eval_on_selector_all(
                "section[data-dataset]", "els => els.map(e => e.dataset.dataset)")
            found = [page.evaluate(
                """([d, first, row, col]) => {
                    const sec = document.querySelector(`section[data-dataset="${d}"]`);
                    if (!sec) return "";
                    for (const t of sec.querySelectorAll("table")) {
                        const heads = Array.from(t.querySelectorAll("thead th"))
                            .map(h => h.textContent.trim());
                        if (heads[0] !== first) continue;
                        const j = heads.indexOf(col);
                        for (const tr of t.querySelectorAll("tbody tr")) {
                            const tds = tr.querySelectorAll("td");
                            if (tds[0].textContent.trim() === row && j >= 0)
                                return tds[j].textContent.trim();
                        }
                    }
                    return "";
                }""", list(c)) for c in cells]
            if screenshot:
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"console_errors": errors, "images": [tuple(i) for i in images],
            "sections": sections, "cells": found}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", type=Path)
    ap.add_argument("--screenshot", type=Path, default=Path("page.png"))
    args = ap.parse_args(argv)
    result = check_page(args.page, screenshot=args.screenshot)
    broken = [src for src, width in result["images"] if not width]
    print(f"{args.page}: sections {', '.join(result['sections'])}; "
          f"{len(result['images'])} images ({len(broken)} broken); "
          f"{len(result['console_errors'])} console errors; screenshot {args.screenshot}")
    for e in result["console_errors"]:
        print(f"  console: {e}")
    return 1 if broken or result["console_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
