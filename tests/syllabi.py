"""Timetables for four course formats, computed from the labs' own minutes.

Every lab states its planned time in its front matter (``**Teaching:** N min · **Exercises:** M min``);
lab 12, the golden-path workshop, also gives each module's minutes in its headings
(``## Module N · Title · Teaching: A min · Exercises: B min``). This script reads those numbers and
lays each format out on a clock, with breaks, so a timetable cannot drift from the labs:
``tests/test_syllabi.py`` fails when the committed ``slides/_syllabi.md`` differs from what this
script makes now, or when a format overruns its slot.

    python tests/syllabi.py            # rewrite slides/_syllabi.md
    python tests/syllabi.py --check    # exit 1 if slides/_syllabi.md is out of date
    python tests/syllabi.py --minutes  # each episode's teaching minutes against the minutes rule
    python tests/syllabi.py --times    # each lab's wall time at every size in _build/lab_times.json

The home page and the instructors' guide include ``slides/_syllabi.md``; the home page includes\n``slides/_course_map.md``; README.md's course map is rewritten between its two markers.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABS = ROOT / "labs"
OUTPUT = ROOT / "slides" / "_syllabi.md"
MAP = ROOT / "slides" / "_course_map.md"

TITLE = re.compile(r"^# # (\d\d) · (.+?)\s*$", re.M)
MINUTES = re.compile(r"\*\*Teaching:\*\*\s*(\d+)\s*min\s*·\s*\*\*Exercises:\*\*\s*(\d+)\s*min")
MODULE = re.compile(
    r"^# ## Module (\d+) · (.+?) · Teaching: (\d+) min · Exercises: (\d+) min\s*$", re.M
)
HEADING = re.compile(r"^# (#{2,3}) (.+?)\s*$", re.M)
SECTION = re.compile(r"^(\d+[a-z]?)\. (.+?)(?:\s+\*\((core|optional)\)\*)?$")
EXERCISE = re.compile(r"^Exercise (\d+): (.+?)(?:\s+\((\d+) min\))?$")
BUILD = ROOT / "_build"

# ---------------------------------------------------------------------------------------------------
# The minutes rule. An episode's teaching minutes must cover at least MIN_PER_SLIDE minutes for every
# core content slide of its deck, plus the minutes its lab's cells take to run at the default size
# (measured: the fastest run recorded in _build/lab_times.json, where a run was recorded). Content
# slides are the deck's `##` slides except Objectives, exercises, solutions and key points; a slide is
# optional when it, or the `#` section it sits in, has the class `.optional`. Optional slides are
# taught when there is time (the guide's "when late" advice names them) and are not counted.
MIN_PER_SLIDE = 2
NOT_CONTENT = re.compile(r"^(Objectives|Exercises?\b|Solutions?\b|Key points)", re.I)


@dataclass(frozen=True)
class Slide:
    title: str
    section: str
    kind: str  # "content", "exercise", "solutions", "objectives", "keypoints"
    optional: bool


def _classes(heading: str) -> tuple[str, set[str]]:
    m = re.match(r"^(.*?)\s*\{([^}]*)\}\s*$", heading)
    if not m:
        return heading.strip(), set()
    return m.group(1).strip(), {c[1:] for c in m.group(2).split() if c.startswith(".")}


def deck_slides(path: Path) -> list[Slide]:
    """The `##` slides of a deck, with their kind and whether they are optional (code blocks skipped)."""
    slides, fence, section, section_optional = [], None, "", False
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            mark = stripped[:3]
            fence = None if fence == mark else (fence or mark)
            continue
        if fence:
            continue
        if line.startswith("# "):
            section, classes = _classes(line[2:])
            section_optional = "optional" in classes
        elif line.startswith("## "):
            title, classes = _classes(line[3:])
            if "exercise" in classes or title.lower().startswith("exercise"):
                kind = "exercise"
            elif "keypoints" in classes or title.lower().startswith("key points"):
                kind = "keypoints"
            elif title.lower().startswith("solution"):
                kind = "solutions"
            elif title.lower().startswith("objectives"):
                kind = "objectives"
            else:
                kind = "content"
            slides.append(Slide(title, section, kind, section_optional or "optional" in classes))
    return slides


def lab_seconds(stem: str, size: str = "small") -> float | None:
    """The fastest recorded run of a lab at a size, from _build/lab_times.json; None where none is."""
    path = BUILD / "lab_times.json"
    try:
        runs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    times = [r["seconds"] for r in runs
             if r.get("lab") == stem and r.get("size", "small") == size and not r.get("burners")]
    return min(times) if times else None


def lab_wall_times() -> dict[str, dict[str, float]]:
    """{lab: {size: fastest seconds}} from _build/lab_times.json (for the guide)."""
    try:
        runs = json.loads((BUILD / "lab_times.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[str, dict[str, float]] = {}
    for r in runs:
        if r.get("burners"):
            continue  # a run beside burner processes (pytest --busy-cores) is not the lab's wall time
        sizes = out.setdefault(r.get("lab", "?"), {})
        size = r.get("size", "small")
        sizes[size] = min(sizes.get(size, float("inf")), r["seconds"])
    return out


@dataclass(frozen=True)
class Lab:
    number: str
    title: str
    teaching: int
    exercises: int
    file: str
    modules: tuple = ()  # (number, title, teaching, exercises) for lab 12
    sections: tuple = ()  # (number, title, tag or None) of the `## N. Title *(core)*` headings
    exercise_list: tuple = ()  # (number, title, minutes or None) of the `### Exercise N: Title (M min)` headings
    headings: tuple = ()  # every `##`/`###` heading's text, for excerpts to name

    @property
    def minutes(self) -> int:
        return self.teaching + self.exercises

    @property
    def stem(self) -> str:
        return Path(self.file).stem

    @property
    def deck(self) -> Path:
        return ROOT / "slides" / f"{self.stem}.qmd"

    def slides(self) -> list[Slide]:
        return deck_slides(self.deck) if self.deck.exists() else []

    def required_teaching(self) -> tuple[int, int, int, int]:
        """(minimum teaching minutes, core content slides, optional content slides, run minutes)."""
        content = [s for s in self.slides() if s.kind == "content"]
        core = sum(not s.optional for s in content)
        seconds = lab_seconds(self.stem)
        run = math.ceil(seconds / 60) if seconds else 0
        return MIN_PER_SLIDE * core + run, core, len(content) - core, run


def read_labs(folder: Path = LABS) -> dict[str, Lab]:
    """Every lab's number, title and minutes, read from its front matter."""
    labs = {}
    for path in sorted(folder.glob("[0-9][0-9]_*.py")):
        text = path.read_text(encoding="utf-8")
        title, minutes = TITLE.search(text), MINUTES.search(text)
        if not (title and minutes):
            raise ValueError(
                f"labs/{path.name}: its front matter needs '# # NN · Title' and "
                f"'**Teaching:** N min · **Exercises:** M min'"
            )
        modules = tuple((int(n), t, int(a), int(b)) for n, t, a, b in MODULE.findall(text))
        headings = tuple(h for _, h in HEADING.findall(text))
        sections, exercises = [], []
        for level, heading in HEADING.findall(text):
            if level == "##" and (m := SECTION.match(heading)):
                sections.append((m.group(1), m.group(2), m.group(3)))
            elif level == "###" and (m := EXERCISE.match(heading)):
                exercises.append((int(m.group(1)), m.group(2), int(m.group(3)) if m.group(3) else None))
        labs[title.group(1)] = Lab(
            title.group(1), title.group(2), int(minutes.group(1)), int(minutes.group(2)),
            f"labs/{path.name}", modules, tuple(sections), tuple(exercises), headings,
        )
    return labs


# ---------------------------------------------------------------------------------------------------
# The formats. Each is a list of days; a day is a start time and a list of items: an episode number
# ("04"), an episode taught without its exercises ("04:teaching", the exercises become homework),
# a module of lab 12 ("12.3"), an Excerpt (named sections and exercises of one lab), or a pause:
# "break 15", "lunch 60", "triage 10" (setup triage, first thing in a format that starts the course),
# "wrap-up 10". A buffer of at least BUFFER_SHARE of the block's minutes is put in before every break
# and lunch; the day's wrap-up is the last block's buffer (it must be at least as long).

BUFFER_SHARE = 0.10
LONGEST_STRETCH = 90  # minutes between two breaks, at most, buffers and wrap-up included
HANDS_ON_SHARE = 0.30  # exercises, at least, of each day's teaching and exercise minutes


@dataclass(frozen=True)
class Excerpt:
    """Part of an episode: the lab sections it teaches (by heading text) and the exercises learners do.

    Exercise minutes come from the lab's exercise headings (``### Exercise N: Title (M min)``); a lab
    that gives none there has them here, in ``exercise_minutes``."""

    lab: str
    topic: str
    sections: tuple
    exercises: tuple
    teaching: int
    exercise_minutes: tuple = ()


@dataclass
class Format:
    key: str
    name: str
    source: str  # what the format is for, and where its plan comes from
    days: list  # [(start "HH:MM", [items])]
    slot: int  # the most minutes a day may take, from start to end, breaks included
    starts_course: bool = True  # learners arrive fresh: the day starts with setup triage
    before: str = ("Learners run `labs/00_setup.py` at home the week before; the first ten minutes in "
                   "the room fix the lines its check still marks *problem*.")
    notes: list = field(default_factory=list)
    topics: tuple = ()  # the seed's topic list this format follows in order, where it has one


SHARED_MEMORY = [
    Excerpt("01", "Benchmarking parallel code", ("Benchmarking done right", "How do we know"),
            ("benchmark it yourself",), 10),
    Excerpt("02", "The global interpreter lock", ("Shock and horror", "Scaling"),
            ("threads or processes?",), 10),
    Excerpt("02", "Multiprocessing and multithreading with joblib", ("The tools",),
            ("a progress report",), 8),
    Excerpt("03", "Checkpointing and restarting", ("Checkpointing",), ("checkpoint in parallel",), 6),
    "break 15",
    Excerpt("09", "Multithreaded file I/O with Zarr and Parquet", ("Parallel reads", "Parquet"),
            ("chunks for a catchment",), 8, (6,)),
    Excerpt("03", "Extensions that release the GIL: Numba, Cython, C++",
            ("Numba", "Cython", "C++ with pybind11"), ("`@njit` a loop", "a parallel ufunc"), 14),
    Excerpt("04", "Dask arrays for out-of-core data, and the dashboard",
            ("Dask arrays", "The dashboard"), ("chunks and tasks",), 10),
    Excerpt("00", "A conda-forge environment for parallel computing",
            ("Packages and their minimum versions",), ("how many workers?",), 5),
    "wrap-up 10",
]
SEED_001_TOPICS = (  # /work/shared/seeds/001: the 3-hour shared-memory course plan, in its order
    "Benchmarking", "global interpreter lock", "joblib", "Checkpointing", "Zarr and Parquet",
    "release the GIL", "Dask", "conda-forge",
)

FORMATS = [
    Format(
        "shared-memory-3h",
        "3 hours: many cores on one machine",
        "Shared-memory Python on one node, in the order of the course plan it comes from (benchmarking, "
        "the GIL, threads and processes with joblib, checkpointing, threaded I/O with Zarr and Parquet, "
        "compiled extensions that release the GIL, Dask for data larger than memory, the environment). "
        "Each row is the named sections of an episode and its exercise.",
        [("09:00", ["triage 10", *SHARED_MEMORY])],
        slot=180,
        notes=["The rest of episodes 01–04 and 09 is self-study: every lab runs on its own."],
        topics=SEED_001_TOPICS,
    ),
    Format(
        "golden-path-3h",
        "3 hours: the golden path, NetCDF to a trained model",
        "For people who know Dask's basics: one path from NetCDF files through Zarr to a PyTorch "
        "model, in the modules of lab 12.",
        [("09:00", ["triage 10", "12.1", "12.2", "break 15", "12.3", "wrap-up 10"])],
        slot=180,
        notes=["No episode is taught before it: learners know the GIL, processes and Dask basics."],
    ),
    Format(
        "one-day",
        "One day",
        "The core path from one laptop to data larger than memory.",
        [("09:00", ["triage 10", "01", "break 15", "02", "lunch 60", "04", "break 15", "07",
                    "break 15", "09", "wrap-up 10"])],
        slot=8 * 60 + 30,
        notes=["Compiled speed (03), many files (06), maps (08) and clusters (05) are left for a second "
               "day or self-study."],
    ),
    Format(
        "two-days",
        "Two days",
        "Every episode from 01 to 11 (00 is done at home); the golden path (12) is a workshop of its own.",
        [
            ("09:00", ["triage 10", "01", "break 15", "02", "lunch 45", "03", "break 10", "04",
                       "break 10", "05", "wrap-up 10"]),
            ("09:00", ["06", "break 10", "07", "lunch 45", "08", "break 10", "09", "break 10", "10",
                       "break 10", "11", "wrap-up 10"]),
        ],
        slot=8 * 60 + 30,
        notes=["Run episode 05 on an HPC system if the room has accounts; episode 11 measures a GPU "
               "where there is one and says so where there is not."],
    ),
]

PAUSES = {"break": "Break", "lunch": "Lunch", "wrap-up": "Questions and wrap-up",
          "triage": "Setup triage: fix the lines `labs/00_setup.py` still marks problem"}
BUFFER = "Buffer: catch up, or start the break early"


@dataclass
class Row:
    start: int  # minutes after midnight
    minutes: int
    what: str
    teaching: int = 0
    exercises: int = 0
    episode: str = ""  # "04", "12.3", or "" for a pause
    file: str = ""
    kind: str = "session"  # "session", "break" (break or lunch), "triage", "buffer", "wrap-up"

    @property
    def pause(self) -> bool:
        return not self.episode


def clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _excerpt_row(item: Excerpt, labs: dict[str, Lab]) -> tuple[Row | None, list[str]]:
    """A row for an excerpt, and what it names that its lab does not have."""
    lab = labs.get(item.lab)
    if lab is None:
        return None, [f"{item.lab} ({item.topic})"]
    problems = [f"{lab.file} has no heading containing {s!r}" for s in item.sections
                if not any(s in h for h in lab.headings)]
    minutes = []
    for index, name in enumerate(item.exercises):
        found = next((e for e in lab.exercise_list if e[1].startswith(name)), None)
        if found is None:
            problems.append(f"{lab.file} has no exercise titled {name!r}")
            continue
        given = item.exercise_minutes[index] if index < len(item.exercise_minutes) else None
        if found[2] is not None and given is not None and found[2] != given:
            problems.append(f"{lab.file}: exercise {name!r} takes {found[2]} min there, {given} here")
        minutes.append(found[2] if found[2] is not None else given)
    if any(m is None for m in minutes):
        problems.append(f"{lab.file}: an exercise of {item.topic!r} gives no minutes ('(N min)' in its heading)")
        minutes = [m or 0 for m in minutes]
    names = "; ".join(item.sections)
    exercises = ", ".join(f"ex. {next(e[0] for e in lab.exercise_list if e[1].startswith(n))}"
                          for n in item.exercises if any(e[1].startswith(n) for e in lab.exercise_list))
    what = f"{lab.number} · {item.topic} ({names}; {exercises})"
    return Row(0, item.teaching + sum(minutes), what, item.teaching, sum(minutes), item.lab, lab.file), problems


def schedule(fmt: Format, labs: dict[str, Lab]) -> tuple[list[list[Row]], list[str]]:
    """The rows of each day, and the items left out because their lab is not in this checkout.

    A pause next to a missing session is dropped where it would leave two pauses in a row, a pause
    first or last in the day, or a day with no teaching at all (then the day is empty). A buffer row
    goes in before each break and lunch."""
    days, missing = [], []
    for start, items in fmt.days:
        rows = []
        for item in items:
            if isinstance(item, Excerpt):
                row, problems = _excerpt_row(item, labs)
                if row is None:
                    missing += problems
                    continue
                rows.append(row)
                continue
            word, _, number = item.partition(" ")
            if word in PAUSES:
                kind = "break" if word in ("break", "lunch") else word
                rows.append(Row(0, int(number), PAUSES[word], kind=kind))
            elif "." in item:  # a module of a lab
                lab_no, module_no = item.split(".")
                lab = labs.get(lab_no)
                module = next((m for m in lab.modules if m[0] == int(module_no)), None) if lab else None
                if module is None:
                    missing.append(item)
                    continue
                _, title, teaching, exercises = module
                rows.append(Row(0, teaching + exercises, f"Module {module_no} · {title}",
                                teaching, exercises, item, lab.file))
            else:
                lab_no, _, part = item.partition(":")
                lab = labs.get(lab_no)
                if lab is None:
                    missing.append(item)
                    continue
                exercises = 0 if part == "teaching" else lab.exercises
                title = f"{lab.number} · {lab.title}" + (" (teaching; exercises as homework)" if part else "")
                rows.append(Row(0, lab.teaching + exercises, title, lab.teaching, exercises, lab_no, lab.file))
        kept = []
        for row in rows:
            if row.kind == "break" and (not kept or kept[-1].kind == "break"):
                continue  # a break first in the day, or right after another break
            kept.append(row)
        while kept and kept[-1].kind == "break":
            kept.pop()  # a break last in the day
        if not any(not r.pause for r in kept):
            kept = []
        with_buffers, block = [], 0
        for row in kept:
            if row.kind == "break" and block:
                with_buffers.append(Row(0, math.ceil(BUFFER_SHARE * block), BUFFER, kind="buffer"))
            block = 0 if row.kind == "break" else block + (row.minutes if not row.pause else 0)
            with_buffers.append(row)
        h, m = map(int, start.split(":"))
        now = h * 60 + m
        for row in with_buffers:
            row.start, now = now, now + row.minutes
        days.append(with_buffers)
    return days, missing


def excerpt_problems(fmt: Format, labs: dict[str, Lab]) -> list[str]:
    """What a format's excerpts name that the labs in this checkout do not have."""
    problems = []
    for _, items in fmt.days:
        for item in items:
            if isinstance(item, Excerpt) and item.lab in labs:
                problems += _excerpt_row(item, labs)[1]
    return problems


def day_figures(rows: list[Row]) -> dict:
    """Teaching, exercise and pause minutes of a day, its hands-on share and its longest stretch."""
    teaching = sum(r.teaching for r in rows if not r.pause)
    exercises = sum(r.exercises for r in rows if not r.pause)
    longest = stretch = 0
    for row in rows:
        stretch = 0 if row.kind == "break" else stretch + row.minutes
        longest = max(longest, stretch)
    length = rows[-1].start + rows[-1].minutes - rows[0].start if rows else 0
    return dict(teaching=teaching, exercises=exercises, length=length, longest=longest,
                hands_on=exercises / (teaching + exercises) if teaching + exercises else 0.0,
                buffer=sum(r.minutes for r in rows if r.kind in ("buffer", "wrap-up")))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(labs: dict[str, Lab] | None = None, link_prefix: str = "../") -> str:
    labs = read_labs() if labs is None else labs
    out = [
        "<!-- Generated by tests/syllabi.py from the labs' front matter: do not edit by hand. -->",
        "<!-- Rewrite it with `python tests/syllabi.py`; tests/test_syllabi.py checks it. -->",
        "",
    ]
    for fmt in FORMATS:
        days, missing = schedule(fmt, labs)
        out += [f"### {fmt.name} {{#syllabus-{fmt.key}}}", "", f"{fmt.source} {fmt.before}", ""]
        for index, rows in enumerate(days, 1):
            if not rows:
                out += ["*Its labs are not in this checkout yet.*", ""]
                continue
            if len(days) > 1:
                out += [f"**Day {index}**", ""]
            out += ["| Time | Session | Teaching | Exercises |", "|---|---|--:|--:|"]
            for row in rows:
                span = f"{clock(row.start)}–{clock(row.start + row.minutes)}"
                if row.pause:
                    out.append(f"| {span} | *{row.what}* | | |")
                else:
                    name = f"[{_cell(row.what)}]({link_prefix}{row.file})"
                    out.append(f"| {span} | {name} | {row.teaching} min | {row.exercises} min |")
            f = day_figures(rows)
            taught = f["teaching"] + f["exercises"]
            end = rows[-1].start + rows[-1].minutes
            out += ["", f"Teaching and exercises: **{taught} min** ({taught / 60:.1f} h), "
                        f"**{f['hands_on']:.0%} hands-on**; buffers and wrap-up {f['buffer']} min; "
                        f"at most {f['longest']} min between breaks; ends at **{clock(end)}**.", ""]
        for note in fmt.notes:
            out += [f"- {note}"]
        if missing:
            out += [f"- Not in this checkout yet, so left out: {', '.join(missing)}."]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def course_map(labs: dict[str, Lab] | None = None) -> str:
    """The home page's table of every episode: minutes, deck and lab."""
    labs = read_labs() if labs is None else labs
    out = [
        "<!-- Generated by tests/syllabi.py from the labs' front matter: do not edit by hand. -->",
        "",
        "| # | Episode (slides) | Teaching | Exercises | Lab |",
        "|---|---|--:|--:|---|",
    ]
    for lab in labs.values():
        stem = Path(lab.file).stem
        out.append(f"| {lab.number} | [{_cell(lab.title)}]({stem}.html) | {lab.teaching} min "
                   f"| {lab.exercises} min | [`{Path(lab.file).name}`](../{lab.file}) |")
    total = sum(lab.minutes for lab in labs.values())
    out += ["", f"All {len(labs)} episodes: **{total} min** of teaching and exercises ({total / 60:.1f} h)."]
    return "\n".join(out) + "\n"


README = ROOT / "README.md"
README_START = "<!-- course map: generated by tests/syllabi.py from the labs' front matter -->"
README_END = "<!-- end of course map -->"


def readme_with_map(labs: dict[str, Lab] | None = None, text: str | None = None) -> str:
    """README.md with its course-map table (between two markers) rewritten from the labs."""
    labs = read_labs() if labs is None else labs
    text = README.read_text(encoding="utf-8") if text is None else text
    if README_START not in text or README_END not in text:
        raise ValueError(f"README.md has lost its course-map markers: put the table between "
                         f"{README_START!r} and {README_END!r}")
    rows = ["| # | Episode | Teaching | Exercises | Lab | Deck |",
            "|---|---------|---------:|----------:|-----|------|"]
    for lab in labs.values():
        deck = f"slides/{Path(lab.file).stem}.qmd"
        rows.append(f"| {lab.number} | {_cell(lab.title)} | {lab.teaching} min | {lab.exercises} min "
                    f"| `{lab.file}` | `{deck}` |")
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    return head + README_START + "\n" + "\n".join(rows) + "\n" + README_END + tail


def generated() -> dict[Path, str]:
    labs = read_labs()
    return {OUTPUT: markdown(labs), MAP: course_map(labs), README: readme_with_map(labs)}


def minutes_report(labs: dict[str, Lab] | None = None) -> str:
    """Each episode's teaching minutes against the minutes rule (``--minutes``)."""
    labs = read_labs() if labs is None else labs
    lines = [f"Rule: teaching >= {MIN_PER_SLIDE} min x core content slides + the lab's run minutes "
             f"(fastest run in _build/lab_times.json)", "",
             "lab  core  optional  run  needed  stated  exercises (sum of headings)"]
    for lab in labs.values():
        needed, core, optional, run = lab.required_teaching()
        given = [e[2] for e in lab.exercise_list]
        sums = f"{sum(given)}" if given and None not in given else "-"
        flag = "" if lab.modules or lab.teaching >= needed else "   <- raise Teaching to at least " + str(needed)
        lines.append(f"{lab.number}  {core:5d}  {optional:8d}  {run:3d}  {needed:6d}  {lab.teaching:6d}  "
                     f"{lab.exercises:3d} ({sums}){flag}")
    return "\n".join(lines)


def times_report() -> str:
    """Each lab's wall time at every size recorded in _build/lab_times.json (``--times``)."""
    try:
        runs = json.loads((BUILD / "lab_times.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no _build/lab_times.json yet: run the labs (pytest labs/, or python tests/execute_labs.py)"
    times = lab_wall_times()
    sizes = sorted({size for by_size in times.values() for size in by_size},
                   key=lambda z: {"small": 0, "workshop": 1, "large": 2}.get(z, 3))
    hardware = sorted({r.get("hardware", "?") for r in runs})
    lines = ["| lab | " + " | ".join(sizes) + " |", "|---|" + "--:|" * len(sizes)]
    for lab in sorted(times):
        cells = [f"{times[lab][z] / 60:.1f} min" if z in times[lab] else "not run" for z in sizes]
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    lines += ["", "Fastest recorded run of each lab at each size; measured on: " + "; ".join(hardware)]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if "--minutes" in argv:
        print(minutes_report())
        return 0
    if "--times" in argv:
        print(times_report())
        return 0
    status = 0
    for path, text in generated().items():
        name = path.relative_to(ROOT).as_posix()
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                print(f"{name} is out of date: run `python tests/syllabi.py`", file=sys.stderr)
                status = 1
            else:
                print(f"{name} matches the labs' minutes")
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {name}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
