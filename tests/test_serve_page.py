"""The page at ``/`` end to end in headless Chromium (Playwright): upload a WAV, the rendered answer must be the
API's answer for the same file. Also writes docs/images/page.png once, for the docs."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from serve_fixtures import FAST, model_file, write_wav  # noqa: F401  (session fixture)
from serve_server import running_server

CHROMIUM = "/usr/bin/chromium"
DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "images" / "page.png"

playwright_api = pytest.importorskip("playwright.sync_api")


def _pct(p: float) -> str:
    return f"{100 * p:.1f}%"


@pytest.mark.skipif(shutil.which(CHROMIUM) is None and shutil.which("chromium") is None, reason="needs chromium")
def test_page_renders_the_api_answer(model_file, tmp_path) -> None:  # noqa: F811
    clip = write_wav(tmp_path / "clip.wav", 1.6, seed=77)
    options = ["--beam-size", str(FAST["beam_size"]), "--max-tokens", str(FAST["max_tokens"])]
    with running_server(model_file, *options, "--log-level", "warning") as server:
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which(CHROMIUM) or shutil.which("chromium"))
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(server.url + "/")
            page.wait_for_function("document.getElementById('model').textContent.includes('test-0')")
            page.set_input_files("#file", str(clip))
            page.wait_for_selector("body[data-done='1']", timeout=120_000)
            rendered = {
                key: page.inner_text(f"#{key}")
                for key in (
                    "transcript",
                    "language-top",
                    "intent",
                    "intent-confidence",
                    "emotion",
                    "vad-count",
                    "slots",
                    "speaker",
                    "gender",
                    "accent",
                )
            }
            vad_list = page.inner_text("#vad-list")
            status = page.inner_text("#status")
            bars = page.locator("#language-bars .bar").count()
            timing_rows = page.locator("#timings tr").count()
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            if not DOCS_SCREENSHOT.exists():
                DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(DOCS_SCREENSHOT), full_page=True)
            browser.close()
        api = httpx.post(f"{server.url}/v1/analyze", content=clip.read_bytes(), timeout=120).json()
    assert not errors, errors
    assert api["cached"] is True  # the page's upload was the same file: the cache answered the API call
    assert rendered["transcript"].strip() == (api["asr"]["text"] or "(no speech)")
    language = api["language"]
    assert rendered["language-top"] == f"{language['label']} ({_pct(language['confidence'])})"
    assert bars == len(language["probabilities"])
    assert rendered["intent"].startswith(api["intent"]["label"])
    assert rendered["intent-confidence"].strip() == _pct(api["intent"]["confidence"])
    assert rendered["emotion"].startswith(f"{api['emotion']['label']} ({_pct(api['emotion']['confidence'])})")
    for task in ("speaker", "gender", "accent"):
        assert rendered[task] == f"{api[task]['label']} ({_pct(api[task]['confidence'])})"
    assert int(rendered["vad-count"]) == len(api["vad"]["segments"])
    expected_vad = ", ".join(f"{s['start']:.2f}–{s['end']:.2f} s" for s in api["vad"]["segments"])
    assert vad_list == expected_vad
    if api["slots"]["spans"]:
        assert all(span["type"] in rendered["slots"] for span in api["slots"]["spans"])
    else:
        assert rendered["slots"] in ("(no slots)", " ".join(api["slots"]["text"].split()))
    assert timing_rows == len(api["timings_ms"])
    assert status.startswith("Done in")
    assert (tmp_path / "page.png").stat().st_size > 10_000
