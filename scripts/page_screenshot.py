"""Screenshot of the service page after analysing one file, for the docs (headless Chromium via Playwright).

    python scripts/page_screenshot.py --model RUN/model.pt --audio clip.flac [--translate-to fr] [--out PNG]

Starts ``mtspeech serve`` on a free loopback port, uploads the file through the page like a person would, waits
for the answer and saves a full-page PNG. The test suite writes docs/images/page.png with a random model only when
the file is missing; run this with a trained model for a screenshot that shows real answers.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the server helper shared with the tests

from serve_server import running_server  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--audio", type=Path, required=True)
    parser.add_argument("--translate-to", default="")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "page.png")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with running_server(args.model, "--log-level", "warning") as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium)
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        page.goto(server.url + "/")
        if args.translate_to:
            page.select_option("#target", args.translate_to)
        page.set_input_files("#file", str(args.audio))
        page.wait_for_selector("body[data-done='1']", timeout=300_000)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out), full_page=True)
        browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
