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
    decks = {p.stem for p in SLIDES}
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


MEASURED = re.compile(
    r"\b\d+(\.\d+)?\s*(×|x\s+(faster|slower)|s\b|ms\b|seconds\b|GB/s|MB/s|MiB/s|GiB/s|samples/s)", re.I
)


@pytest.mark.parametrize("deck", SLIDES, ids=lambda p: p.name)
def test_no_measured_numbers_typed_into_slides(deck):
    """Timings and speed-ups reach the slides through embeds, never typed by hand."""
    in_code = False
    typed = []
    for number, line in enumerate(deck.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        prose = re.sub(r"`[^`]*`", "", line)  # inline code such as `-j 4` or `sleep 1` is not a measurement
        if not in_code and "{{<" not in line and MEASURED.search(prose):
            typed.append(f"{deck.name}:{number}: {line.strip()}")
    assert not typed, "numbers that look measured, typed into a deck (embed them from the lab):\n" + "\n".join(typed)
