"""The syllabi agree with the labs' minutes and fit their slots; the home page and guide link up.

The syllabus checks read the committed ``slides/_syllabi.md`` (what the home page and the guide show)
and compare it with the labs' front matter, parsed here on its own. The link checks render the home
page and the instructors' guide with Quarto and follow every relative link in them; they skip, with
the reason, where ``quarto`` is not installed.
"""

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests import syllabi

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "slides" / "_syllabi.md"
ROW = re.compile(r"^\| (\d\d):(\d\d)–(\d\d):(\d\d) \| (.+?) \|\s*(?:(\d+) min)?\s*\|\s*(?:(\d+) min)?\s*\|$")
LINKED = re.compile(r"\[(.+?)\]\(\.\./(labs/[^)]+)\)")


def front_matter():
    """{labs/NN_x.py: (teaching, exercises)} and {(labs/12_x.py, module title): (teaching, exercises)}."""
    labs, modules = {}, {}
    for path in (ROOT / "labs").glob("[0-9][0-9]_*.py"):
        text = path.read_text(encoding="utf-8")
        m = re.search(r"\*\*Teaching:\*\* (\d+) min · \*\*Exercises:\*\* (\d+) min", text)
        assert m, f"labs/{path.name} has no '**Teaching:** N min · **Exercises:** M min' line"
        labs[f"labs/{path.name}"] = (int(m.group(1)), int(m.group(2)))
        for n, title, a, b in re.findall(r"^# ## Module (\d+) · (.+) · Teaching: (\d+) min · Exercises: (\d+) min$",
                                         text, re.M):
            modules[(f"labs/{path.name}", f"Module {n} · {title}")] = (int(a), int(b))
    return labs, modules


def committed_days():
    """{format heading: [[row, ...] per day]} parsed from the committed markdown."""
    formats, current = {}, None
    for line in COMMITTED.read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            current = formats.setdefault(line[4:].split(" {#")[0], [])
        elif line.startswith("| Time |"):
            current.append([])
        elif (m := ROW.match(line)) and current is not None:
            h1, m1, h2, m2 = map(int, m.group(1, 2, 3, 4))
            current[-1].append(dict(start=h1 * 60 + m1, end=h2 * 60 + m2, what=m.group(5),
                                    teaching=m.group(6), exercises=m.group(7)))
    return formats


@pytest.mark.parametrize("path,text", syllabi.generated().items(), ids=lambda x: getattr(x, "name", ""))
def test_committed_tables_are_up_to_date(path, text):
    name = path.relative_to(ROOT).as_posix()
    assert path.exists(), f"{name} is missing: run `python tests/syllabi.py`"
    assert path.read_text(encoding="utf-8") == text, (
        f"{name} no longer matches the labs' minutes: run `python tests/syllabi.py` and commit it"
    )


def test_every_format_is_in_the_committed_syllabi():
    assert set(committed_days()) == {f.name for f in syllabi.FORMATS}


def test_syllabus_minutes_match_the_labs():
    labs, modules = front_matter()
    checked = 0
    for name, days in committed_days().items():
        for rows in days:
            for row in rows:
                link = LINKED.search(row["what"])
                if not link:
                    assert row["teaching"] is None, f"{name}: {row['what']} has minutes but names no lab"
                    continue
                title, file = link.groups()
                title = title.replace("\\|", "|")
                assert file in labs, f"{name}: {file} is not a lab"
                if title.startswith("Module "):
                    assert (file, title) in modules, f"{name}: {file} has no heading for {title!r}"
                    teaching, exercises = modules[(file, title)]
                elif "exercises as homework" in title:
                    teaching, exercises = labs[file][0], 0
                else:
                    teaching, exercises = labs[file]
                assert (int(row["teaching"]), int(row["exercises"])) == (teaching, exercises), (
                    f"{name}: {title} shows {row['teaching']} + {row['exercises']} min, "
                    f"but {file} says {teaching} + {exercises} min"
                )
                assert row["end"] - row["start"] == teaching + exercises, f"{name}: {title}'s times of day"
                checked += 1
    assert checked >= 10


def test_rows_follow_each_other_without_gaps():
    for name, days in committed_days().items():
        for rows in days:
            for before, after in zip(rows, rows[1:]):
                assert before["end"] == after["start"], f"{name}: a gap or overlap before {after['what']}"


@pytest.mark.parametrize("fmt", syllabi.FORMATS, ids=lambda f: f.key)
def test_no_syllabus_overruns_its_slot(fmt):
    days, _ = syllabi.schedule(fmt, syllabi.read_labs())
    for number, rows in enumerate(days, 1):
        if not rows:
            continue
        length = rows[-1].start + rows[-1].minutes - rows[0].start
        assert length <= fmt.slot, f"{fmt.name}, day {number}: {length} min from start to end, slot {fmt.slot} min"
        taught = sum(r.minutes for r in rows if not r.pause)
        low, high = fmt.teaching_range
        assert taught <= high, f"{fmt.name}, day {number}: {taught} min of teaching, at most {high}"
        missing = syllabi.schedule(fmt, syllabi.read_labs())[1]
        if not missing:  # a day short of a lab that has not arrived yet may run short
            assert taught >= low, f"{fmt.name}, day {number}: only {taught} min of teaching, at least {low}"
        breaks = [r for r in rows if r.pause and not r.what.startswith("Questions")]
        if length > 150:
            assert breaks, f"{fmt.name}, day {number}: {length} min without a break"
        stretch = 0
        for row in rows:
            stretch = 0 if row in breaks else stretch + row.minutes
            assert stretch <= 150, f"{fmt.name}, day {number}: {stretch} min without a break before {row.what}"


def test_the_golden_path_uses_lab_12s_modules():
    labs = syllabi.read_labs()
    if "12" not in labs:
        pytest.skip("labs/12_golden_path.py is not in this checkout yet")
    lab = labs["12"]
    assert lab.modules, f"{lab.file} has no '## Module N · Title · Teaching: A min · Exercises: B min' headings"
    fmt = next(f for f in syllabi.FORMATS if f.key == "golden-path-3h")
    items = [i for _, day in fmt.days for i in day if i.startswith("12.")]
    assert sorted(items) == [f"12.{m[0]}" for m in lab.modules], "the golden-path syllabus must list every module"
    teaching, exercises = sum(m[2] for m in lab.modules), sum(m[3] for m in lab.modules)
    assert (teaching, exercises) == (lab.teaching, lab.exercises), (
        f"{lab.file}: its modules add up to {teaching} + {exercises} min, its front matter says "
        f"{lab.teaching} + {lab.exercises} min"
    )


def test_guide_minutes_match_the_labs():
    """Each episode section of the guide states the lab's minutes; they must be the lab's own."""
    labs, _ = front_matter()
    text = (ROOT / "slides" / "instructors.qmd").read_text(encoding="utf-8")
    sections = re.findall(r"^### (\d\d) · .*?\n\n(.*?)$", text, re.M)
    assert len(sections) >= 10, "the guide should have a section per episode ('### NN · Title')"
    checked = 0
    for number, first_line in sections:
        lab = next((f for f in labs if Path(f).name.startswith(f"{number}_")), None)
        m = re.match(r"\*\*Teaching:\*\* (\d+) min · \*\*Exercises:\*\* (\d+) min", first_line)
        if lab is None:
            continue  # an episode whose lab has not arrived yet
        if number == "12":
            assert m is None, "episode 12's minutes are per module: point to the golden-path timetable"
            continue
        assert m, f"the guide's section {number} must start with '**Teaching:** N min · **Exercises:** M min'"
        assert (int(m.group(1)), int(m.group(2))) == labs[lab], (
            f"the guide gives episode {number} {m.group(1)} + {m.group(2)} min, {lab} says {labs[lab]}"
        )
        checked += 1
    covered = {n for n, _ in sections}
    uncovered = sorted(Path(f).name[:2] for f in labs if Path(f).name[:2] not in covered)
    assert not uncovered, f"episodes without a section in the guide: {uncovered}"
    assert checked >= 10


# ---------------------------------------------------------------------------------------------------
# Links. The pages render into _site/slides/; labs are copied into _site/labs/ (project resources).

PAGES = ["index", "instructors", "setup_message"]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def site():
    quarto = shutil.which("quarto")
    if quarto is None:
        pytest.skip("quarto is not on PATH: install it (pixi includes it, or https://quarto.org) to check the links")
    for page in PAGES:
        result = subprocess.run([quarto, "render", f"slides/{page}.qmd"], cwd=ROOT,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"quarto render slides/{page}.qmd failed:\n{result.stderr[-3000:]}"
    return ROOT / "_site"


def _not_arrived(target: Path) -> bool:
    """A link to an episode (deck or lab) whose lab is not in this checkout yet: episodes are written
    in parallel, and the guide describes them all. Once the lab arrives, its links are checked."""
    m = re.fullmatch(r"(\d\d_\w+)\.(html|py)", target.name)
    return bool(m) and not (ROOT / "labs" / f"{m.group(1)}.py").exists()


@pytest.mark.quarto
@pytest.mark.parametrize("page", PAGES)
def test_links_resolve(site, page):
    html_file = site / "slides" / f"{page}.html"
    assert html_file.exists(), f"quarto wrote no _site/slides/{page}.html"
    parsed = _parse(html_file)
    broken = []
    for href in parsed.links:
        url = urlsplit(href)
        if url.scheme:  # http(s), mailto, and data: (inlined styles and images) lead elsewhere or nowhere
            continue
        if not url.path:  # a link inside the page
            if url.fragment and url.fragment not in parsed.ids:
                broken.append(href)
            continue
        target = (html_file.parent / unquote(url.path)).resolve()
        if _not_arrived(target):
            continue
        if target.suffix == ".html" and target.parent == (site / "slides").resolve():
            deck = ROOT / "slides" / f"{target.stem}.qmd"
            if not deck.exists():  # decks render only with their executed labs; their sources must exist
                broken.append(href)
            elif target.exists() and url.fragment and url.fragment not in _parse(target).ids:
                broken.append(href)
            continue
        if not target.exists():
            broken.append(href)
    assert not broken, f"_site/slides/{page}.html has links that lead nowhere: {broken}"


@pytest.mark.quarto
def test_home_page_links_every_deck_and_lab(site):
    links = {urlsplit(h).path for h in _parse(site / "slides" / "index.html").links}
    for lab in sorted((ROOT / "labs").glob("[0-9][0-9]_*.py")):
        assert f"{lab.stem}.html" in links, f"the home page does not link the deck {lab.stem}"
        assert f"../labs/{lab.name}" in links, f"the home page does not link labs/{lab.name}"
    assert "instructors.html" in links and "setup_message.html" in links


@pytest.mark.quarto
def test_pages_are_self_contained(site):
    for page in PAGES:
        text = (site / "slides" / f"{page}.html").read_text(encoding="utf-8")
        loads = re.findall(r"<(?:script|link|img)[^>]+(?:src|href)=\"(https?:)?//[^\"]+\"", text)
        assert not loads, f"_site/slides/{page}.html loads from the network: {loads[:3]}"
