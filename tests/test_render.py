"""Render the decks with Quarto and look at every slide in headless Chromium, as the room will see it.

Every deck in ``slides/`` is rendered, opened at 1280×800 with all fragments shown, and each slide is
measured and photographed. The checks are what a person at the back of the room would notice:

* the deck presents offline: no request leaves 127.0.0.1, no console errors, every image decodes;
* nothing extends past the slide box, or below the top of the footer;
* no output box hides content (a box that would need scrolling, or that cuts text off);
* no text is smaller than 20 px (18 px for code and printed output), in the slide's own 1280×800 pixels;
* no machine path is shown (a home directory, a temporary folder, a virtual environment);
* the printed outputs embedded in a deck are those of the notebooks in ``_build/`` right now.

A PNG of every slide goes to ``_build/decks/<deck>/NN.png``, a contact sheet per deck to
``_build/decks/<deck>-sheet.png``, and the measurements to ``_build/decks/summary.txt`` and
``_build/decks/<deck>/report.json``: open the sheets and look.

Skipped, with the reason, where ``quarto`` or a Chromium browser is not installed. Playwright never
downloads a browser here: it drives the system's Chromium (Debian: ``apt install chromium``), or the
one named by ``COURSE_CHROMIUM``.
"""

import functools
import html
import http.server
import json
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
SITE = ROOT / "_site"
SHOTS = BUILD / "decks"
# The decks (NN_name.qmd). index.qmd, instructors.qmd and setup_message.qmd are web pages, not slides:
# tests/test_syllabi.py renders them and follows their links.
DECKS = sorted(p.stem for p in (ROOT / "slides").glob("[0-9][0-9]_*.qmd"))
# COURSE_DECKS=12_golden_path,04_dask looks at those decks only (each rendered on its own): quicker
# while one deck is being written. Unset, every deck is rendered as the site.
ONLY = [d.strip() for d in os.environ.get("COURSE_DECKS", "").split(",") if d.strip()]
DECKS = [d for d in DECKS if d in ONLY] if ONLY else DECKS

MIN_TEXT_PX = 20   # body and table text, in pixels of the 1280×800 slide
MIN_CODE_PX = 18   # code and printed output
TOLERANCE_PX = 2   # sub-pixel rounding and anti-aliasing

# What a slide must never show: where the course happens to live on the machine that ran the labs
# (a relative `.venv/bin/activate` in an instruction is fine; `/somewhere/.venv/bin/python` is not).
MACHINE_PATH = re.compile(
    r"(/home/[\w.-]+|/Users/[\w.-]+|[A-Za-z]:\\Users\\|/root/|/tmp/|/var/folders/|/private/var/"
    r"|[/\\]\.?venv[/\\]|site-packages|dist-packages|/opt/conda|/usr/lib/python)"
)

# ... and this machine's own places, wherever they are (an HPC scratch folder, a CI checkout)
_HERE = {str(ROOT), str(ROOT.parent), str(Path.home()), os.environ.get("COURSE_DATA_DIR", "")}
MACHINE_PATH = re.compile(MACHINE_PATH.pattern + "".join(f"|{re.escape(p)}" for p in sorted(_HERE) if len(p) > 4))

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
        if not (BUILD / f"{lab.stem}.ipynb").exists() and (not ONLY or lab.stem in ONLY):
            execute(lab)
    targets = [[f"slides/{deck}.qmd"] for deck in DECKS] if ONLY else [[]]
    for target in targets:
        result = subprocess.run(["quarto", "render", *target], cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"quarto render failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    decks = {deck: SITE / "slides" / f"{deck}.html" for deck in DECKS}
    missing = [name for name, html_file in decks.items() if not html_file.exists()]
    assert not missing, f"quarto render wrote no HTML for {missing}: is each deck listed in _quarto.yml's render?"
    return decks


@pytest.fixture(scope="module")
def server(rendered):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
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
                  "--no-first-run", "--disable-sync", "--disable-quic", "--font-render-hinting=none"],
        )
        yield b
        b.close()


# ------------------------------------------------------------------------------------------------
# Looking at a deck

PREPARE = """async () => {
    // every fragment shown, no animation; the images of far-away slides are loaded lazily: load them all
    Reveal.configure({fragments: false, transition: 'none', backgroundTransition: 'none'});
    for (const el of document.querySelectorAll('.reveal img, .reveal iframe, .reveal video'))
        if (!el.getAttribute('src') && el.dataset.src) el.src = el.dataset.src;
    await document.fonts.ready;
    const bad = [];
    for (const i of document.querySelectorAll('.reveal img')) {
        // decode() rejects for an image that cannot be loaded or decoded; an SVG without
        // width/height attributes decodes with a natural width of 0, which is fine
        const ok = await i.decode().then(() => true, () => false);
        const svg = (i.src || '').startsWith('data:image/svg') || (i.src || '').endsWith('.svg');
        if (!ok || (i.naturalWidth === 0 && !svg)) bad.push(i.alt || (i.src || '').slice(0, 60));
    }
    return {broken: bad, indices: Reveal.getSlides().map(s => Reveal.getIndices(s))};
}"""

# Measures the slide on screen, in the slide's own pixels (1280×800 before reveal.js scales it).
MEASURE = r"""async ([minText, minCode, tol]) => {
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    const W = Reveal.getConfig().width, H = Reveal.getConfig().height, scale = Reveal.getScale();
    const slide = Reveal.getCurrentSlide();
    const box = document.querySelector('.reveal .slides').getBoundingClientRect();
    const x = v => (v - box.left) / scale, y = v => (v - box.top) / scale;
    // the footer line is part of the slide's frame: content must stay above it
    let floor = H;
    const foot = document.querySelector('.reveal > .footer p, .reveal > .footer');
    if (foot && foot.innerText.trim() && getComputedStyle(foot).display !== 'none') {
        const f = foot.getBoundingClientRect(); if (f.height) floor = Math.min(H, y(f.top));
    }
    const shown = el => { const s = getComputedStyle(el);
        return s.display !== 'none' && s.visibility !== 'hidden' && el.getClientRects().length > 0; };
    const label = el => (el.tagName.toLowerCase() + (typeof el.className === 'string' && el.className.trim()
        ? '.' + el.className.trim().split(/\s+/).join('.') : '')).slice(0, 50);
    const snippet = el => ((el.innerText || el.alt || el.textContent || '').trim().split('\n')[0]).slice(0, 60);
    const clips = s => s.overflowX !== 'visible' || s.overflowY !== 'visible';
    const res = {title: ((slide.querySelector('h1, h2, h3') || {}).innerText || '').trim().slice(0, 70),
                 floor: Math.round(floor), off: [], hidden: [], small: [], images: [], wrapped: [],
                 notes: !!slide.querySelector('aside.notes'), text: slide.innerText || ''};
    let bottom = 0, right = 0, left = W, top = H;
    for (const el of [slide, ...slide.querySelectorAll('*')]) {
        if (el.closest('aside.notes, .MJX_Assistive_MathML, script, style, title') || !shown(el)) continue;
        const r = el.getBoundingClientRect();
        if (!r.width && !r.height) continue;
        const s = getComputedStyle(el);
        // a box that clips (overflow other than visible) shows only what lies inside it: the part of an
        // element that is seen is its ink cut to every clipping box around it (what it hides is judged below)
        let view = {top: -Infinity, bottom: Infinity, left: -Infinity, right: Infinity};
        for (let p = el.parentElement; p && slide.contains(p); p = p.parentElement)
            if (clips(getComputedStyle(p))) { const q = p.getBoundingClientRect();
                view = {top: Math.max(view.top, q.top), bottom: Math.min(view.bottom, q.bottom),
                        left: Math.max(view.left, q.left), right: Math.min(view.right, q.right)}; }
        // what paints: text (measured by its glyph boxes), images and plots, boxes with a border or background;
        // an empty container that merely reaches further (a margin, a wrapper div) is not seen
        const texts = Array.from(el.childNodes).filter(n => n.nodeType === 3 && n.textContent.trim());
        let ink = null;
        if (texts.length) {
            for (const n of texts) { const range = document.createRange(); range.selectNodeContents(n);
                for (const q of range.getClientRects()) if (q.width && q.height) ink = ink
                    ? {top: Math.min(ink.top, q.top), bottom: Math.max(ink.bottom, q.bottom), left: Math.min(ink.left, q.left), right: Math.max(ink.right, q.right)}
                    : {top: q.top, bottom: q.bottom, left: q.left, right: q.right}; }
        }
        const painted = ['IMG', 'svg', 'CANVAS', 'VIDEO', 'IFRAME', 'PRE', 'TABLE', 'HR', 'math'].includes(el.tagName) ||
            (s.backgroundColor !== 'rgba(0, 0, 0, 0)' && s.backgroundColor !== 'transparent') || s.backgroundImage !== 'none' ||
            ['Top', 'Right', 'Bottom', 'Left'].some(side => parseFloat(s['border' + side + 'Width']) > 0 && s['border' + side + 'Style'] !== 'none');
        if (!ink && painted) ink = r;
        if (ink) ink = {top: Math.max(ink.top, view.top), bottom: Math.min(ink.bottom, view.bottom),
                        left: Math.max(ink.left, view.left), right: Math.min(ink.right, view.right)};
        if (el !== slide && ink && ink.bottom > ink.top && ink.right > ink.left) {
            const b = y(ink.bottom), rt = x(ink.right), l = x(ink.left), t = y(ink.top);
            bottom = Math.max(bottom, b); right = Math.max(right, rt); left = Math.min(left, l); top = Math.min(top, t);
            if (b > floor + tol || rt > W + tol || l < -tol || t < -5 * tol)   // a glyph's box rises above its line
                res.off.push({el: label(el), bottom: Math.round(b), right: Math.round(rt), left: Math.round(l), text: snippet(el)});
        }
        // a box that clips or scrolls and holds more than it shows
        if (clips(s) && el.clientWidth > 2 && el.clientHeight > 2 &&
            (el.scrollHeight > el.clientHeight + tol || el.scrollWidth > el.clientWidth + tol))
            res.hidden.push({el: label(el), rows_px: Math.max(0, el.scrollHeight - el.clientHeight),
                             cols_px: Math.max(0, el.scrollWidth - el.clientWidth), text: snippet(el)});
        // a line of code or output wider than the slide wraps (the style wraps rather than cuts it off)
        if (el.tagName === 'PRE') {
            const c = el.querySelector('code') || el, cs = getComputedStyle(c), lh = parseFloat(cs.lineHeight);
            const lines = (c.innerText || '').replace(/\n+$/, '').split('\n').length;
            const drawn = Math.round((c.getBoundingClientRect().height / scale - parseFloat(cs.paddingTop) - parseFloat(cs.paddingBottom)
                                      - parseFloat(cs.borderTopWidth) - parseFloat(cs.borderBottomWidth)) / lh);
            if (lh && drawn > lines) res.wrapped.push({el: label(el), lines, drawn, text: snippet(el)});
        }
        // text size, of HTML text only (SVG text scales with its viewBox; a figure is judged by eye)
        if (!(el instanceof SVGElement) &&
            Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim())) {
            const px = parseFloat(s.fontSize), code = !!el.closest('pre, code, .cell-output');
            if (px < (code ? minCode : minText) - 0.05)
                res.small.push({el: label(el), px: Math.round(px * 10) / 10, code, text: snippet(el)});
        }
        if (el.tagName === 'IMG' && el.naturalWidth)
            res.images.push({alt: (el.alt || '').slice(0, 60), shown_px: Math.round(r.width / scale),
                             natural_px: el.naturalWidth});
    }
    // report the outermost offenders first, a few of each
    const keep = (list, key) => list.sort((a, b) => b[key] - a[key]).slice(0, 5);
    res.bottom = Math.round(bottom); res.right = Math.round(right); res.left = Math.round(left); res.top = Math.round(top);
    res.off = keep(res.off, 'bottom'); res.hidden = keep(res.hidden, 'rows_px');
    res.small_min = res.small.length ? Math.min(...res.small.map(s => s.px)) : null;
    res.small = res.small.sort((a, b) => a.px - b.px).slice(0, 5);
    res.W = W; res.H = H;
    return res;
}"""


def _look_at(browser, server, deck, folder):
    """Open one deck, measure and photograph each slide; return the deck's report (a dict)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    context = browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
    page = context.new_page()
    errors, outside = [], []
    page.on("console", lambda msg: errors.append(msg.text)
            if msg.type == "error" and not msg.location.get("url", "").endswith("favicon.ico") else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: outside.append(req.url)
            if not req.url.startswith((server, "data:", "blob:", "about:")) else None)
    try:
        page.goto(f"{server}/slides/{deck}.html", wait_until="load")
        page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=30_000)
        ready = page.evaluate(PREPARE)
        slides = []
        for n, ix in enumerate(ready["indices"], 1):
            page.evaluate("([h, v]) => Reveal.slide(h, v)", [ix["h"], ix.get("v") or 0])
            info = page.evaluate(MEASURE, [MIN_TEXT_PX, MIN_CODE_PX, TOLERANCE_PX])
            info["n"] = n
            page.screenshot(path=str(folder / f"{n:02d}.png"))
            slides.append(info)
        text = page.evaluate("document.body.innerText")
    finally:
        context.close()
    return {"deck": deck, "slides": slides, "console_errors": errors, "requests_off_machine": sorted(set(outside)),
            "broken_images": ready["broken"], "unresolved_shortcodes": "{{<" in text or ">}}" in text}


def _contact_sheet(folder, target, columns=4, thumb=(480, 300)):
    """All slide PNGs of a deck on one image, numbered, for a person to look over."""
    from PIL import Image, ImageDraw

    shots = sorted(folder.glob("*.png"))
    if not shots:
        return
    pad, caption = 8, 22
    rows = -(-len(shots) // columns)
    sheet = Image.new("RGB", (columns * (thumb[0] + pad) + pad, rows * (thumb[1] + caption + pad) + pad), "#c8c8c8")
    draw = ImageDraw.Draw(sheet)
    for k, shot in enumerate(shots):
        with Image.open(shot) as im:
            im = im.convert("RGB")
            im.thumbnail(thumb)
            cx, cy = pad + (k % columns) * (thumb[0] + pad), pad + (k // columns) * (thumb[1] + caption + pad)
            sheet.paste(im, (cx, cy + caption))
            draw.text((cx + 2, cy + 4), f"{folder.name} #{shot.stem}", fill="#000000")
    sheet.save(target, optimize=True)


def _summary(report):
    """One deck's measurements, as lines a person can read (and the lead can hand on)."""
    s = report["slides"]
    off = [f"{x['n']}(to y={x['bottom']}, x={x['right']})" for x in s if x["off"]]
    hidden = [f"{x['n']}(+{max(h['rows_px'] for h in x['hidden'])} px rows, +{max(h['cols_px'] for h in x['hidden'])} px cols)"
              for x in s if x["hidden"]]
    small = [f"{x['n']}({x['small_min']} px)" for x in s if x["small"]]
    paths = [str(x["n"]) for x in s if MACHINE_PATH.search(x["text"])]
    wrapped = [f"{x['n']}({sum(w['drawn'] - w['lines'] for w in x['wrapped'])} wrapped)" for x in s if x["wrapped"]]
    sizes = [x["small_min"] for x in s if x["small_min"] is not None]
    return [
        f"{report['deck']}: {len(s)} slides; off the slide: {len(off)}; boxes hiding content: {len(hidden)}; "
        f"code/output too wide (wraps): {len(wrapped)}; small text: {len(small)} (smallest {min(sizes) if sizes else '-'} px); "
        f"machine paths: {len(paths)}",
        f"   off the slide (bottom limit {s[0]['floor'] if s else '-'} px, right 1280 px): {', '.join(off) or '-'}",
        f"   boxes hiding content: {', '.join(hidden) or '-'}",
        f"   code or output lines wider than the slide (wrapped): {', '.join(wrapped) or '-'}",
        f"   text under {MIN_TEXT_PX} px (code under {MIN_CODE_PX} px): {', '.join(small) or '-'}",
        f"   machine paths shown: {', '.join(paths) or '-'}",
        f"   slides without speaker notes: {', '.join(str(x['n']) for x in s if not x['notes']) or '-'}",
    ]


@pytest.fixture(scope="module")
def looked_at(rendered, server, browser):
    """Every deck, measured slide by slide; PNGs, contact sheets and a summary under _build/decks/."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    reports, lines = {}, []
    for deck in DECKS:
        report = _look_at(browser, server, deck, SHOTS / deck)
        _contact_sheet(SHOTS / deck, SHOTS / f"{deck}-sheet.png")
        (SHOTS / deck / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
        reports[deck] = report
        lines += _summary(report)
    (SHOTS / "summary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return reports


def _where(slide):
    return f"slide {slide['n']} ({slide['title'] or 'untitled'})"


# ------------------------------------------------------------------------------------------------
# The checks, one per deck each, so a failure names the deck and the slide

@pytest.mark.parametrize("deck", DECKS)
def test_deck_presents_offline(deck, looked_at):
    report = looked_at[deck]
    problems = []
    if not report["slides"]:
        problems.append("no slides")
    if report["console_errors"]:
        problems.append(f"console errors {report['console_errors'][:3]}")
    if report["broken_images"]:
        problems.append(f"images that did not load {report['broken_images'][:3]}")
    if report["unresolved_shortcodes"]:
        problems.append("unresolved shortcode text ({{< ... >}})")
    if report["requests_off_machine"]:
        problems.append(f"requests left the machine {report['requests_off_machine'][:3]}")
    assert not problems, f"{deck}: " + "; ".join(problems)


@pytest.mark.parametrize("deck", DECKS)
def test_nothing_off_the_slide(deck, looked_at):
    """Every element inside the 1280×800 slide box and above the footer."""
    bad = [f"{_where(s)}: content reaches y={s['bottom']} px (limit {s['floor']}), x={s['right']} px (limit {s['W']}); "
           f"e.g. {s['off'][0]['el']} {s['off'][0]['text']!r}" for s in looked_at[deck]["slides"] if s["off"]]
    assert not bad, (f"{deck}: content off the slide (cut the output in the lab, or split the slide); "
                     f"PNGs in _build/decks/{deck}/\n" + "\n".join(bad))


@pytest.mark.parametrize("deck", DECKS)
def test_no_box_hides_content(deck, looked_at):
    """No output box (or .scrollable slide) that needs scrolling or cuts its content off."""
    bad = [f"{_where(s)}: {h['el']} hides {h['rows_px']} px of rows, {h['cols_px']} px of columns; starts {h['text']!r}"
           for s in looked_at[deck]["slides"] for h in s["hidden"]]
    assert not bad, (f"{deck}: boxes that hide content (the lab should print only what the slide needs)\n"
                     + "\n".join(bad))


@pytest.mark.parametrize("deck", DECKS)
def test_code_and_output_fit_the_width(deck, looked_at):
    """A line of code or printed output wider than the slide wraps on screen: the lab should print it narrower."""
    bad = [f"{_where(s)}: {w['lines']} lines drawn as {w['drawn']}, starts {w['text']!r}"
           for s in looked_at[deck]["slides"] for w in s["wrapped"]]
    assert not bad, (f"{deck}: code or output lines wider than the slide (they wrap; shorten them in the lab or deck)\n"
                     + "\n".join(bad))


@pytest.mark.parametrize("deck", DECKS)
def test_text_large_enough(deck, looked_at):
    """Text at least MIN_TEXT_PX, code and output at least MIN_CODE_PX, in pixels of the 1280×800 slide."""
    bad = [f"{_where(s)}: {x['px']} px {'code' if x['code'] else 'text'} in {x['el']} {x['text']!r}"
           for s in looked_at[deck]["slides"] for x in s["small"][:2]]
    assert not bad, (f"{deck}: text too small for a room (minimum {MIN_TEXT_PX} px, code {MIN_CODE_PX} px)\n"
                     + "\n".join(bad))


@pytest.mark.parametrize("deck", DECKS)
def test_no_machine_paths(deck, looked_at):
    """Slides show relative paths and the hardware line, never where the labs happened to run."""
    bad = []
    for s in looked_at[deck]["slides"]:
        for m in MACHINE_PATH.finditer(s["text"]):
            line = next(l for l in s["text"].splitlines() if m.group(0) in l)
            bad.append(f"{_where(s)}: {line.strip()[:100]!r}")
            break
    assert not bad, f"{deck}: machine paths on the slides (print paths relative to the repository)\n" + "\n".join(bad)


def test_decks_show_the_latest_lab_outputs(rendered):
    """Printed outputs embedded in a deck are those of the notebooks in _build/ right now."""
    stale = []
    for deck, html_file in rendered.items():
        page = re.sub(r"\s+", " ", html.unescape(html_file.read_text(encoding="utf-8")))
        source = ROOT / "slides" / f"{deck}.qmd"
        for target, label, _ in EMBED.findall(source.read_text(encoding="utf-8")):
            nb = nbformat.read(BUILD / (Path(target).name + ".ipynb"), as_version=4)
            cell = labelled_cells(nb).get(label)
            printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            first = next((line.strip() for line in printed.splitlines() if len(line.strip()) > 12), None)
            if first and re.sub(r"\s+", " ", first)[:40] not in page:
                stale.append(f"{deck}#{label}: {first[:40]!r} not found")
    assert not stale, "\n".join(stale)
