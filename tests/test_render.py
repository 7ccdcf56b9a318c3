"""Render the decks with Quarto and open them in headless Chromium, as a classroom would.

Skipped, with the reason, where ``quarto`` or a Chromium browser is not installed. Playwright never
downloads a browser here: it drives the system's Chromium (Debian: ``apt install chromium``), or the
one named by ``COURSE_CHROMIUM``.
"""

import functools
import http.server
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import nbformat
import pytest

from tests.execute_labs import BUILD, execute, lab_paths
from tests.test_embeds import EMBED, labelled_cells

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_site" / "slides"

pytestmark = pytest.mark.quarto


def chromium():
    for candidate in (os.environ.get("COURSE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


@pytest.fixture(scope="module")
def rendered():
    if shutil.which("quarto") is None:
        pytest.skip("quarto is not on PATH: install it (pixi includes it, or https://quarto.org) to render the decks")
    for lab in lab_paths():
        if not (BUILD / f"{lab.stem}.ipynb").exists():
            execute(lab)
    result = subprocess.run(["quarto", "render"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"quarto render failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    decks = sorted(SITE.glob("*.html"))
    assert decks, f"quarto render wrote no deck into {SITE}"
    return decks


@pytest.fixture(scope="module")
def server(rendered):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(ROOT / "_site"))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    exe = chromium()
    if exe is None:
        pytest.skip("no Chromium found (apt install chromium, or set COURSE_CHROMIUM); Playwright must not download one")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=exe,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync", "--disable-quic"],
        )
        yield b
        b.close()


def test_decks_present_offline(rendered, server, browser):
    problems = []
    for deck in rendered:
        page = browser.new_page()
        errors, outside = [], []
        page.on("console", lambda msg: errors.append(msg.text)
                if msg.type == "error" and not msg.location.get("url", "").endswith("favicon.ico") else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda req: outside.append(req.url)
                if not req.url.startswith((server, "data:", "blob:", "about:")) else None)
        page.goto(f"{server}/slides/{deck.name}", wait_until="load")
        page.wait_for_timeout(500)
        slides = page.evaluate("document.querySelectorAll('.reveal .slides section').length")
        # reveal.js loads the images of far-away slides lazily (data-src): load them all, then look
        broken = page.evaluate(
            """async () => {
                const imgs = Array.from(document.querySelectorAll('.reveal img'));
                for (const i of imgs) { if (!i.getAttribute('src') && i.dataset.src) i.src = i.dataset.src; }
                const bad = [];
                for (const i of imgs) {
                    // decode() rejects for an image that cannot be loaded or decoded; an SVG without
                    // width/height attributes decodes with a natural width of 0, which is fine
                    const ok = await i.decode().then(() => true, () => false);
                    const svg = (i.src || '').startsWith('data:image/svg') || (i.src || '').endsWith('.svg');
                    if (!ok || (i.naturalWidth === 0 && !svg)) bad.push(i.alt || (i.src || '').slice(0, 60));
                }
                return bad;
            }"""
        )
        text = page.evaluate("document.body.innerText")
        page.close()
        name = deck.name
        if slides == 0:
            problems.append(f"{name}: no slides")
        if errors:
            problems.append(f"{name}: console errors {errors[:3]}")
        if broken:
            problems.append(f"{name}: images that did not load {broken[:3]}")
        if "{{<" in text or ">}}" in text:
            problems.append(f"{name}: unresolved shortcode text")
        if outside:
            problems.append(f"{name}: requests left the machine {outside[:3]}")
    assert not problems, "\n".join(problems)


def test_decks_show_the_latest_lab_outputs(rendered):
    """Printed outputs embedded in a deck are those of the notebooks in _build/ right now."""
    stale = []
    for deck in rendered:
        html = deck.read_text(encoding="utf-8")
        source = ROOT / "slides" / (deck.stem + ".qmd")
        for target, label, _ in EMBED.findall(source.read_text(encoding="utf-8")):
            nb = nbformat.read(BUILD / (Path(target).name + ".ipynb"), as_version=4)
            cell = labelled_cells(nb).get(label)
            printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            first = next((line.strip() for line in printed.splitlines() if len(line.strip()) > 12), None)
            if first and re.sub(r"\s+", " ", first)[:40] not in re.sub(r"\s+", " ", _unescape(html)):
                stale.append(f"{deck.name}#{label}: {first[:40]!r} not found")
    assert not stale, "\n".join(stale)


def _unescape(html):
    import html as h

    return h.unescape(html)
