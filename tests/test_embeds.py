"""The decks embed the executed labs by cell label; these checks keep the two in step.

They read the notebooks that the labs wrote to ``_build/`` (``pytest`` runs labs/ before tests/).
"""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SLIDES = sorted((ROOT / "slides").glob("*.qmd"))
LABS = sorted((ROOT / "labs").glob("[0-9][0-9]_*.py"))
EMBED = re.compile(r"\{\{<\s*embed\s+(\S+?)\.ipynb#([\w\-]+)([^>]*)>\}\}")
LABEL = re.compile(r"^#\|\s*label:\s*([\w\-]+)\s*$", re.M)


def embeds():
    """(deck, lab stem, label) for every embed shortcode in slides/."""
    found = []
    for deck in SLIDES:
        for target, label, _ in EMBED.findall(deck.read_text(encoding="utf-8")):
            found.append((deck.name, Path(target).name, label))
    return found


def labelled_cells(nb):
    cells = {}
    for cell in nb.cells:
        m = LABEL.search(cell.source) if cell.cell_type == "code" else None
        if m:
            cells[m.group(1)] = cell
    return cells


def test_decks_embed_from_build_only():
    for deck in SLIDES:
        for target, label, _ in EMBED.findall(deck.read_text(encoding="utf-8")):
            assert target.startswith("../_build/"), f"{deck.name}: embed {target}#{label} must point into ../_build/"


def test_every_lab_has_a_deck_and_back():
    labs = {p.stem for p in LABS}
    decks = {p.stem for p in SLIDES if re.match(r"\d\d_", p.stem)}  # not index.qmd or a guide
    assert labs == decks, f"labs without deck: {sorted(labs - decks)}; decks without lab: {sorted(decks - labs)}"


@pytest.mark.parametrize("deck,lab,label", embeds())
def test_embed_label_exists_in_lab(deck, lab, label):
    source = ROOT / "labs" / f"{lab}.py"
    assert source.exists(), f"{deck} embeds from {lab}, but labs/{lab}.py does not exist"
    labels = LABEL.findall(source.read_text(encoding="utf-8"))
    assert label in labels, f"{deck} embeds #{label}, which labs/{lab}.py does not label"


@pytest.mark.parametrize("deck,lab,label", embeds())
def test_embed_has_output_in_built_notebook(deck, lab, label):
    built = ROOT / "_build" / f"{lab}.ipynb"
    if not built.exists():
        pytest.skip(f"_build/{lab}.ipynb is missing: run `pytest labs/{lab}.py` or `python tests/execute_labs.py {lab}`")
    cell = labelled_cells(nbformat.read(built, as_version=4)).get(label)
    assert cell is not None, f"_build/{lab}.ipynb has no cell labelled {label}: rebuild it"
    kinds = [o.output_type for o in cell.outputs]
    assert kinds, f"{deck} embeds #{label}, but that cell printed or displayed nothing"
    assert "error" not in kinds, f"#{label} in _build/{lab}.ipynb ended in an error"


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_labels_are_unique_and_figures_accessible(lab):
    text = lab.read_text(encoding="utf-8")
    labels = LABEL.findall(text)
    assert len(labels) == len(set(labels)), f"{lab.name}: duplicate labels {sorted({x for x in labels if labels.count(x) > 1})}"
    for cell in re.split(r"^# %%", text, flags=re.M):
        m = LABEL.search(cell)
        if m and m.group(1).startswith("fig-"):
            assert re.search(r"^#\|\s*fig-cap:", cell, re.M), f"{lab.name} #{m.group(1)} needs a fig-cap (caption)"
            assert re.search(r"^#\|\s*fig-alt:", cell, re.M), f"{lab.name} #{m.group(1)} needs a fig-alt (alt text)"


# ---------------------------------------------------------------------------------------------------
# Typed numbers. A timing, speed-up, memory figure or throughput typed into a deck is true on one
# machine on one day; on the instructor's laptop it is wrong in front of the room. The decks embed
# them from the executed labs instead. The check reads every line of a deck, speaker notes included
# (instructors read them aloud), but not: fenced code blocks, inline `code`, $maths$, embed
# shortcodes and HTML comments.
#
# What it flags (each alternative is one form a measured figure takes in prose):
TYPED = {
    "a duration": r"\b\d+(\.\d+)?\s*(ns|µs|μs|us|ms|s|sec|secs|seconds?|milliseconds?|microseconds?|nanoseconds?)\b",
    "a memory or data size": r"\b\d+(\.\d+)?\s*(KiB|MiB|GiB|TiB|kB|KB|MB|GB|TB)\b",
    "a throughput": r"\b\d+(\.\d+)?\s*[A-Za-zµ]*/(s|sec|second)\b",
    "a speed-up": r"\b\d+(\.\d+)?\s*(×|x\b|-fold\b|times\s+(faster|slower|quicker|as\s+fast|more|less|fewer))",
    "a speed-up or efficiency in words": r"\b(speed-?ups?|efficiency|slow-?down)\s+(of\s+|is\s+|was\s+|=\s*)?(about\s+|~\s*)?\d",
    "a percentage of time or speed": r"\b\d+(\.\d+)?\s*%\s*(faster|slower|quicker|less|more|of\s+(the\s+)?(time|peak|run|cpu|memory|ram))",
    "an approximate figure": r"(\b(about|roughly|approximately|around|nearly)\s+|~\s*)\d",
    "a processor count or clock": r"\b\d+(\.\d+)?(\s*|-)(cores?|CPUs?|GHz|MHz)\b",
}
MEASURED = re.compile("|".join(f"(?:{p})" for p in TYPED.values()), re.I)
# What passes, and why:
ALLOWED = {
    # "10m below ~15°", "5° S–5° N": degrees are coordinates and grid spacings, fixed by the data.
    "an angle or a grid spacing": r"~?\s*\d+(\.\d+)?\s*°",
    # "a 4-core job", "one worker per 4 cores", "each 8-core node": a hypothetical machine, not this one.
    "a hypothetical machine": r"\b(a|an|each|every|per|any|one\s+\w+\s+per)\s+\d+(\s*|-)(cores?|CPUs?)\b",
    # "[Teaching 30 min · Exercises 25 min]", "(15 min)", "2 h walltime": planned time, not measured.
    # (Not matched by TYPED at all: min, minutes, h and hours are not in its list of durations.)
    # Episode and lab numbers ("lab 04"), years ("2000–2002"), grid spacing in a definition ("1°"),
    # dtype widths ("int16", "4 bytes") and Dask's documented thresholds ("80 %") carry no unit
    # from the list above, so they pass.
}
ALLOWED_RE = re.compile("|".join(f"(?:{p})" for p in ALLOWED.values()), re.I)
# A number that is a setting the lab itself uses (a chunk size, a limit) is better embedded too, so
# that deck and lab cannot drift apart. Where a typed figure is right on every machine, say why on
# the same line with an HTML comment, which the deck never shows:  <!-- typed: Dask's default -->
JUSTIFIED = re.compile(r"<!--\s*typed:\s*\S.*?-->")
NOT_PROSE = [
    re.compile(r"\{\{<.*?>\}\}", re.S),  # embed and other shortcodes
    re.compile(r"<!--.*?-->", re.S),  # HTML comments (the deck never shows them)
    re.compile(r"`[^`\n]*(\n[^`\n]+)*`"),  # inline code such as `-j 4` or `sleep 1` is an argument, not a measurement
    re.compile(r"\$\$.*?\$\$|\$[^$\s][^$\n]*\$", re.S),  # maths: 4 \times \frac{...}{...}
]
FENCE = re.compile(r"^\s*(```|~~~)")


def _blank(match: re.Match) -> str:
    """Replace a match by spaces but keep its line breaks, so line numbers stay right."""
    return re.sub(r"[^\n]", " ", match.group(0))


def typed_numbers(text: str) -> list[tuple[int, str, str]]:
    """(line number, what it looks like, line) for every prose line that types a measured-looking figure."""
    lines = text.splitlines()
    prose_lines = []
    in_code = False
    for line in lines:
        fence = FENCE.match(line)
        if fence:
            in_code = not in_code
        prose_lines.append("" if in_code or fence or JUSTIFIED.search(line) else line)
    prose = "\n".join(prose_lines)
    for pattern in NOT_PROSE:  # inline code and comments may run over several lines
        prose = pattern.sub(_blank, prose)
    prose = ALLOWED_RE.sub(_blank, prose)
    found = []
    for number, (line, rest) in enumerate(zip(lines, prose.split("\n")), 1):
        for what, pattern in TYPED.items():
            m = re.search(pattern, rest, re.I)
            if m:
                found.append((number, f"{what} ({m.group(0).strip()!r})", line.strip()))
                break
    return found


# Forms the check must catch, and forms it must let through: the check's own test.
CAUGHT = [
    "The loop took 12.5 s on this laptop",
    "one call costs 3 ms",
    "about 40 milliseconds per file",
    "a worker idles at 217 MiB",
    "the array is 1.2 GiB",
    "reads at 850 MB/s",
    "20 Mdarts/s",
    "Numba is 35× faster",
    "Numba is 35 x faster",
    "4 times faster with four processes",
    "a 3-fold speed-up",
    "a speed-up of 1.9 on two cores",
    "efficiency 85 %",
    "about 120 files",
    "~300 tasks",
    "30 % faster",
    "One 2-core machine pretending to be several",
    "a 2.4 GHz Xeon",
]
PASSED = [
    "Lab 04 continues episode 05",
    "[Teaching 30 min · Exercises 25 min]{.minutes}",
    "`heat_sausage` (15 min) then serve",
    "ERA5 for 2000–2002, 6-hourly",
    "1° at workshop size, 0.25° ERA5 is coarse",
    "t2m is stored as int16, 4 bytes per value",
    "| 80 % | **pauses**: no new tasks |",
    "Run the lab inside a 4-core interactive job",
    "one worker per 4 cores",
    "`sleep 1` waits one second",
    "$$\\pi \\approx 4 \\times \\frac{a}{b}$$",
    "{{< embed ../_build/04_dask.ipynb#idle-memory >}} MiB",
    "Step 1000 cannot start before step 999",
    "near the equator `cos(latitude)` is almost 1",
    "Cartopy picks 10m coastlines below ~15°",
    "`SLURMCluster(cores=48, memory=\"172GB\",\n walltime=\"02:00:00\")`",
    "```bash\nsleep 5  # 5 s\n```",
    "a miniature of a node with 2 GiB per core <!-- typed: a made-up node, not a measurement -->",
]


@pytest.mark.parametrize("line", CAUGHT)
def test_typed_number_check_catches(line):
    assert typed_numbers(line), f"the typed-numbers check misses {line!r}"


@pytest.mark.parametrize("line", PASSED)
def test_typed_number_check_lets_through(line):
    assert not typed_numbers(line), f"the typed-numbers check wrongly flags {line!r}: {typed_numbers(line)}"


@pytest.mark.parametrize("deck", SLIDES, ids=lambda p: p.name)
def test_no_measured_numbers_typed_into_slides(deck):
    """Timings, speed-ups, memory and hardware figures reach the slides through embeds, never typed."""
    typed = [f"{deck.name}:{n}: {what}: {line}" for n, what, line in typed_numbers(deck.read_text(encoding="utf-8"))]
    assert not typed, (
        "numbers that look measured, typed into a deck (speaker notes included). Embed them from the lab "
        "(`{{< embed ../_build/NN_x.ipynb#label >}}`), reword without the figure, or, where the figure is "
        "true on every machine, say why on the same line: <!-- typed: reason -->\n" + "\n".join(typed)
    )
