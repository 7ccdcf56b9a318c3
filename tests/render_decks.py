"""Execute the labs, then render every page in ``slides/`` into ``_site/``, one failure stopping nothing.

    python tests/render_decks.py                 execute every lab, then render every deck (``pixi run slides``)
    python tests/render_decks.py --no-execute    render from the notebooks already in ``_build/``
    python tests/render_decks.py 04 07           execute and render only those labs' decks (name prefixes)

A deck embeds its lab's executed notebook (``_build/NN_name.ipynb``). When a lab fails, its deck is not
rendered (its old notebook would show another run's numbers), every other page is, and the script ends
with a list of what it could not render and why, and exit status 1. Pages that embed no lab (an index,
an instructors' guide) are always rendered. Quarto comes from ``$QUARTO`` or the ``PATH``.

When every page can be rendered, one ``quarto render`` of the project does it; if that fails, each page
is rendered on its own so that one broken page does not take the others down.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.execute_labs import BUILD, ROOT, LabError, LabKernel, lab_paths  # noqa: E402
from tests.test_embeds import EMBED  # noqa: E402

SLIDES = ROOT / "slides"
SITE = ROOT / "_site"
RENDER_TIMEOUT_S = 600  # one quarto call; a deck renders in seconds


def quarto() -> str | None:
    return os.environ.get("QUARTO") or shutil.which("quarto")


def embedded_labs(page: Path) -> list[str]:
    """Stems of the notebooks a page embeds (``04_dask`` for ``../_build/04_dask.ipynb#label``)."""
    stems = [Path(target).name for target, _, _ in EMBED.findall(page.read_text(encoding="utf-8"))]
    return sorted(set(stems))


def execute_labs(labs: list[Path]) -> dict[str, str]:
    """Execute each lab; returns {lab stem: why it failed} for those that did not run to the end."""
    failed = {}
    for lab in labs:
        start = time.perf_counter()
        print(f"== executing {lab.relative_to(ROOT)}", flush=True)
        kernel = LabKernel(lab)
        try:
            kernel.run()
        except LabError as err:
            failed[lab.stem] = str(err).splitlines()[0]
            print(f"   FAILED after {time.perf_counter() - start:.0f} s. {err}", file=sys.stderr, flush=True)
            continue
        finally:
            kernel.close()
        print(f"   wrote {kernel.notebook_path.relative_to(ROOT)} in {time.perf_counter() - start:.0f} s", flush=True)
    return failed


def _tail(text: str, n: int = 6) -> str:
    lines = [x for x in text.strip().splitlines() if x.strip()]
    return "\n      ".join(lines[-n:]) or "(no output)"


def _run_quarto(exe: str, *args: str) -> tuple[bool, str]:
    try:
        out = subprocess.run([exe, "render", *args], cwd=ROOT, capture_output=True, text=True,
                             timeout=RENDER_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"quarto render {' '.join(args)} took longer than {RENDER_TIMEOUT_S} s"
    return out.returncode == 0, _tail(out.stderr + out.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", help="name prefixes, e.g. 04 or 07_xarray (default: every lab and page)")
    parser.add_argument("--no-execute", action="store_true", help="do not execute the labs; use _build/ as it is")
    args = parser.parse_args(argv)

    exe = quarto()
    if exe is None:
        print("quarto is not installed (not on PATH, and $QUARTO is not set). Install it (pixi includes it; "
              "otherwise https://quarto.org/docs/get-started/) and run this again.", file=sys.stderr)
        return 2
    labs = lab_paths(args.labs)
    if args.labs and not labs:
        print(f"No lab matches {args.labs}.", file=sys.stderr)
        return 2
    pages = sorted(SLIDES.glob("*.qmd"))
    if args.labs:
        chosen = {lab.stem for lab in labs}
        pages = [p for p in pages if p.stem in chosen]

    started = time.perf_counter()
    lab_failed = {} if args.no_execute else execute_labs(labs)

    problems: dict[str, str] = {}  # page -> why it was not rendered
    renderable = []
    for page in pages:
        for stem in embedded_labs(page):
            if stem in lab_failed:
                problems[page.name] = lab_failed[stem]  # "NN_x.py failed in #cell: ValueError: ..."
                break
            if not (BUILD / f"{stem}.ipynb").exists():
                problems[page.name] = (f"_build/{stem}.ipynb is missing: lab {stem}.py has not run "
                                       f"(python tests/execute_labs.py {stem[:2]})")
                break
        else:
            renderable.append(page)

    rendered = []
    if renderable and not problems and not args.labs:
        print(f"== quarto render (every page: {len(renderable)})", flush=True)
        ok, log = _run_quarto(exe)
        if ok:
            rendered = renderable
        else:
            print(f"   quarto render of the whole project failed; rendering page by page:\n      {log}", flush=True)
    if not rendered:
        for page in renderable:
            rel = page.relative_to(ROOT).as_posix()
            print(f"== quarto render {rel}", flush=True)
            ok, log = _run_quarto(exe, rel)
            if ok:
                rendered.append(page)
            else:
                problems[page.name] = f"quarto failed:\n      {log}"

    print(f"\nrendered {len(rendered)} of {len(pages)} page(s) into {SITE.relative_to(ROOT)}/slides/ "
          f"in {time.perf_counter() - started:.0f} s")
    if problems:
        print(f"NOT rendered ({len(problems)}):", file=sys.stderr)
        for name, why in sorted(problems.items()):
            stale = SITE / "slides" / (Path(name).stem + ".html")
            note = f"\n      (the {stale.relative_to(ROOT)} there is from an earlier run)" if stale.exists() else ""
            print(f"  slides/{name}: {why}{note}", file=sys.stderr)
    if lab_failed:
        print(f"{len(lab_failed)} lab(s) failed: {', '.join(f'{s}.py' for s in lab_failed)}; their messages are above",
              file=sys.stderr)
    return 1 if problems or lab_failed else 0


if __name__ == "__main__":
    sys.exit(main())
