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
    """Each row's minutes are its lab's own (front matter, module heading or exercise headings)."""
    labs = syllabi.read_labs()
    excerpts = {syllabi._excerpt_row(i, labs)[0].what for f in syllabi.FORMATS for _, items in f.days
                for i in items if isinstance(i, syllabi.Excerpt) and i.lab in labs}
    checked = 0
    for fmt in syllabi.FORMATS:
        for rows in syllabi.schedule(fmt, labs)[0]:
            for row in rows:
                if row.pause or row.what in excerpts:  # excerpts: test_excerpts_name_what_the_labs_have
                    continue
                lab = labs[row.episode.split(".")[0]]
                if "." in row.episode:
                    module = next(m for m in lab.modules if f"{lab.number}.{m[0]}" == row.episode)
                    expected = (module[2], module[3])
                elif row.what.endswith("homework)"):
                    expected = (lab.teaching, 0)
                else:
                    expected = (lab.teaching, lab.exercises)
                assert (row.teaching, row.exercises) == expected, f"{fmt.name}: {row.what}"
                assert row.minutes == row.teaching + row.exercises
                checked += 1
    assert checked >= 10


def test_rows_follow_each_other_without_gaps():
    for name, days in committed_days().items():
        for rows in days:
            for before, after in zip(rows, rows[1:]):
                assert before["end"] == after["start"], f"{name}: a gap or overlap before {after['what']}"


# ---------------------------------------------------------------------------------------------------
# Rules a room can keep. Definitions (tests/syllabi.py): a *block* is the sessions between two breaks
# (or lunch); every block is followed by a buffer of at least 10 % of its minutes, the day's last block
# by the wrap-up; the *stretch* is the time from one break to the next, buffers, triage and wrap-up
# included; *hands-on* is the share of exercise minutes in a day's teaching and exercise minutes.

def _days(fmt):
    days, _ = syllabi.schedule(fmt, syllabi.read_labs())
    return [(n, rows) for n, rows in enumerate(days, 1) if rows]


def _blocks(rows):
    """[(sessions, the row after them)] split at pauses."""
    blocks, current = [], []
    for row in rows:
        if row.pause:
            if current:
                blocks.append((current, row))
            current = []
        else:
            current.append(row)
    if current:
        blocks.append((current, None))
    return blocks


FORMATS = pytest.mark.parametrize("fmt", syllabi.FORMATS, ids=lambda f: f.key)


@FORMATS
def test_every_day_fits_its_slot(fmt):
    for number, rows in _days(fmt):
        length = syllabi.day_figures(rows)["length"]
        assert length <= fmt.slot, f"{fmt.name}, day {number}: {length} min from start to end, slot {fmt.slot} min"


@FORMATS
def test_a_break_at_least_every_90_minutes(fmt):
    for number, rows in _days(fmt):
        longest = syllabi.day_figures(rows)["longest"]
        assert longest <= syllabi.LONGEST_STRETCH, (
            f"{fmt.name}, day {number}: {longest} min without a break (at most {syllabi.LONGEST_STRETCH})"
        )


@FORMATS
def test_ten_percent_slack_after_every_block(fmt):
    for number, rows in _days(fmt):
        for sessions, after in _blocks(rows):
            work = sum(r.minutes for r in sessions)
            assert after is not None and after.kind in ("buffer", "wrap-up"), (
                f"{fmt.name}, day {number}: no buffer or wrap-up after {sessions[-1].what}"
            )
            assert after.minutes >= syllabi.BUFFER_SHARE * work, (
                f"{fmt.name}, day {number}: {after.minutes} min of slack after a {work}-min block "
                f"ending with {sessions[-1].what}; at least {syllabi.BUFFER_SHARE:.0%}"
            )
        f = syllabi.day_figures(rows)
        assert f["buffer"] >= syllabi.BUFFER_SHARE * (f["teaching"] + f["exercises"])


@FORMATS
def test_setup_triage_opens_a_format_that_starts_the_course(fmt):
    days = _days(fmt)
    assert days, f"{fmt.name}: no day has its labs in this checkout"
    first = days[0][1][0]
    if fmt.starts_course:
        assert first.kind == "triage" and first.minutes >= 10, f"{fmt.name}: day 1 must start with 10 min of setup triage"
    assert all(r.kind != "triage" for _, rows in days[1:] for r in rows), "triage belongs to the first day only"


@FORMATS
def test_every_day_ends_with_a_wrap_up(fmt):
    for number, rows in _days(fmt):
        assert rows[-1].kind == "wrap-up" and rows[-1].minutes >= 10, f"{fmt.name}, day {number}: no wrap-up at the end"


@FORMATS
def test_at_least_30_percent_hands_on(fmt):
    for number, rows in _days(fmt):
        share = syllabi.day_figures(rows)["hands_on"]
        assert share >= syllabi.HANDS_ON_SHARE, f"{fmt.name}, day {number}: {share:.0%} hands-on, at least 30 %"


@FORMATS
def test_practice_in_every_block(fmt):
    for number, rows in _days(fmt):
        for sessions, _ in _blocks(rows):
            assert sum(r.exercises for r in sessions) > 0, (
                f"{fmt.name}, day {number}: the block ending with {sessions[-1].what} has no exercise"
            )


@FORMATS
def test_excerpts_name_what_the_labs_have(fmt):
    problems = syllabi.excerpt_problems(fmt, syllabi.read_labs())
    assert not problems, f"{fmt.name}: {problems}"


def test_shared_memory_format_follows_seed_001_in_order():
    fmt = next(f for f in syllabi.FORMATS if f.key == "shared-memory-3h")
    topics = [i.topic for _, items in fmt.days for i in items if isinstance(i, syllabi.Excerpt)]
    assert topics and "Benchmarking" in topics[0], "the shared-memory format starts with benchmarking"
    position = -1
    for wanted in fmt.topics:
        found = next((n for n, t in enumerate(topics) if wanted.lower() in t.lower() and n > position), None)
        assert found is not None, f"seed 001's topic {wanted!r} is missing, or out of order, in {topics}"
        position = found


# ---------------------------------------------------------------------------------------------------
# Minutes from content (the rule is stated in tests/syllabi.py: MIN_PER_SLIDE per core content slide of
# the deck plus the lab's measured run minutes). `python tests/syllabi.py --minutes` prints the table.

LABS = syllabi.read_labs()


@pytest.mark.parametrize("lab", LABS.values(), ids=lambda lab: lab.stem)
def test_teaching_minutes_cover_the_core_content(lab):
    if not lab.deck.exists():
        pytest.skip(f"{lab.deck.name} is not in this checkout")
    needed, core, optional, run = lab.required_teaching()
    teaching = sum(m[2] for m in lab.modules) if lab.modules else lab.teaching
    assert teaching >= needed, (
        f"{lab.file}: {teaching} min of teaching for {core} core slides ({syllabi.MIN_PER_SLIDE} min each) "
        f"and {run} min of running cells: at least {needed}. Raise the minutes, or tag slides "
        f"`{{.optional}}` in {lab.deck.name} (and the sections `*(optional)*` in the lab)"
    )


@pytest.mark.parametrize("lab", LABS.values(), ids=lambda lab: lab.stem)
def test_sections_are_tagged_core_or_optional(lab):
    untagged = [f"{n}. {t}" for n, t, tag in lab.sections if tag is None]
    assert not untagged, f"{lab.file}: end these section headings with *(core)* or *(optional)*: {untagged}"
    optional_lab = any(tag == "optional" for *_, tag in lab.sections)
    optional_deck = any(s.optional for s in lab.slides())
    assert optional_lab == optional_deck or not lab.deck.exists(), (
        f"{lab.file} and {lab.deck.name}: one has optional sections and the other none; tag both"
    )


@pytest.mark.parametrize("lab", LABS.values(), ids=lambda lab: lab.stem)
def test_exercise_minutes_add_up(lab):
    given = [m for *_, m in lab.exercise_list]
    if not given or None in given:
        pytest.skip(f"{lab.file} gives no minutes in its exercise headings")
    assert sum(given) == lab.exercises, (
        f"{lab.file}: its exercises' headings add up to {sum(given)} min, its front matter says {lab.exercises}"
    )


def exercise_places(path):
    """[(exercise number, the numbered section or module it follows)] in document order."""
    place, out = None, []
    for line in Path(ROOT / path).read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^# ## (?:(\d+[a-z]?)\. |(Module \d+) · |(.+))", line):
            place = m.group(1) or m.group(2) or m.group(3).strip()
        elif m := re.match(r"^# ###+ Exercise (\d+)", line):
            out.append((int(m.group(1)), place))
    return out


@pytest.mark.parametrize("lab", LABS.values(), ids=lambda lab: lab.stem)
def test_exercises_follow_the_sections_they_practise(lab):
    """One exercise after each section it practises: not bunched after the last section, nor in an
    'Exercises' section of their own; each heading gives its minutes."""
    places = exercise_places(lab.file)
    numbered = [n for n, _, _ in lab.sections]
    assert all(isinstance(p, str) and (p in numbered or p.startswith("Module")) for _, p in places), (
        f"{lab.file}: every exercise should sit inside a numbered section (after its content), not under "
        f"{sorted({p for _, p in places if p not in numbered and not str(p).startswith('Module')})}")
    if len(places) >= 2 and len(numbered) >= 2:
        assert len({p for _, p in places}) >= 2, (
            f"{lab.file}: all its exercises sit after section {places[0][1]}: move each after the section it practises")
    assert [n for n, _ in places] == sorted(n for n, _ in places), f"{lab.file}: exercises out of order: {places}"
    if lab.exercise_list:
        assert None not in [m for *_, m in lab.exercise_list], f"{lab.file}: give every exercise heading its (M min)"


@pytest.mark.parametrize("lab", LABS.values(), ids=lambda lab: lab.stem)
def test_deck_states_the_labs_minutes(lab):
    if not lab.deck.exists():
        pytest.skip(f"{lab.deck.name} is not in this checkout")
    m = re.search(r"\[Teaching (\d+) min · Exercises (\d+) min", lab.deck.read_text(encoding="utf-8"))
    assert m, f"{lab.deck.name}: no '[Teaching N min · Exercises M min' line"
    assert (int(m.group(1)), int(m.group(2))) == (lab.teaching, lab.exercises), (
        f"{lab.deck.name} says {m.group(1)} + {m.group(2)} min, {lab.file} says {lab.teaching} + {lab.exercises}"
    )


def test_guide_names_every_optional_section_in_its_when_late_advice():
    text = (ROOT / "slides" / "instructors.qmd").read_text(encoding="utf-8")
    sections = re.split(r"^### (\d\d) · ", text, flags=re.M)
    late = {number: "\n".join(line for line in body.splitlines() if "when late" in line.lower())
            for number, body in zip(sections[1::2], sections[2::2])}
    missing = [f"{lab.number}: §{n} {t}" for lab in LABS.values() for n, t, tag in lab.sections
               if tag == "optional" and f"§{n}" not in late.get(lab.number, "")]
    assert not missing, f"each episode's 'When late' line in the guide should name its optional sections: {missing}"


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
