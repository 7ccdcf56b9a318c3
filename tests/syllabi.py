"""Timetables for four course formats, computed from the labs' own minutes.

Every lab states its planned time in its front matter (``**Teaching:** N min · **Exercises:** M min``);
lab 12, the golden-path workshop, also gives each module's minutes in its headings
(``## Module N · Title · Teaching: A min · Exercises: B min``). This script reads those numbers and
lays each format out on a clock, with breaks, so a timetable cannot drift from the labs:
``tests/test_syllabi.py`` fails when the committed ``slides/_syllabi.md`` differs from what this
script makes now, or when a format overruns its slot.

    python tests/syllabi.py            # rewrite slides/_syllabi.md
    python tests/syllabi.py --check    # exit 1 if slides/_syllabi.md is out of date

The home page and the instructors' guide include ``slides/_syllabi.md``; the home page includes\n``slides/_course_map.md``; README.md's course map is rewritten between its two markers.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Lab:
    number: str
    title: str
    teaching: int
    exercises: int
    file: str
    modules: tuple = ()  # (number, title, teaching, exercises) for lab 12

    @property
    def minutes(self) -> int:
        return self.teaching + self.exercises


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
        labs[title.group(1)] = Lab(
            title.group(1), title.group(2), int(minutes.group(1)), int(minutes.group(2)),
            f"labs/{path.name}", modules,
        )
    return labs


# ---------------------------------------------------------------------------------------------------
# The formats. Each is a list of days; a day is a start time and a list of items: an episode number
# ("04"), an episode taught without its exercises ("04:teaching", the exercises become homework),
# a module of lab 12 ("12.3"), or a break ("break 15", "lunch 60", "wrap-up 15"; minutes given here).


@dataclass
class Format:
    key: str
    name: str
    source: str  # what the format is for, and where its plan comes from
    days: list  # [(start "HH:MM", [items])]
    slot: int  # the most minutes a day may take, from start to end, breaks included
    teaching_range: tuple = (0, 10_000)  # minutes of teaching + exercises per day, inclusive
    before: str = "Learners run `labs/00_setup.py` at home the week before; episode 00 checks it in the room."
    notes: list = field(default_factory=list)


FORMATS = [
    Format(
        "shared-memory-3h",
        "3 hours: many cores on one machine",
        "Many cores on one node: the GIL, threads and processes, compiled code that releases the GIL, "
        "and Dask for arrays larger than memory.",
        [("09:00", ["02", "03:teaching", "break 15", "04:teaching", "wrap-up 15"])],
        slot=180,
        before="Learners run `labs/00_setup.py` at home the week before.",
        notes=["The exercises of episodes 03 and 04 become homework: their solutions are in the labs."],
    ),
    Format(
        "golden-path-3h",
        "3 hours: the golden path, NetCDF to a trained model",
        "For people who know Dask's basics: one path from NetCDF files through Zarr to a PyTorch "
        "model, in the modules of lab 12.",
        [("09:00", ["12.1", "12.2", "break 15", "12.3", "wrap-up 15"])],
        slot=180,
        before="Learners run `labs/00_setup.py` at home the week before.",
        notes=["No episode is taught before it: learners know the GIL, processes and Dask basics."],
    ),
    Format(
        "one-day",
        "One day",
        "The core path from one laptop to data larger than memory.",
        [("09:00", ["00", "01", "02", "break 15", "04", "lunch 60", "07", "06", "break 15", "09"])],
        slot=8 * 60 + 30,
        teaching_range=(360, 390),
        notes=["Compiled speed (03), maps (08) and clusters (05) are left for a second day or self-study."],
    ),
    Format(
        "two-days",
        "Two days",
        "Every episode from 00 to 11; the golden path (12) is a workshop of its own.",
        [
            ("09:00", ["00", "01", "02", "break 15", "03", "lunch 60", "04", "break 15", "05", "06"]),
            ("09:00", ["07", "08", "break 15", "09", "lunch 60", "10", "break 15", "11", "wrap-up 15"]),
        ],
        slot=8 * 60 + 30,
        teaching_range=(240, 390),
        notes=["Run episode 05 on an HPC system if the room has accounts; episode 11 measures a GPU "
               "where there is one and says so where there is not."],
    ),
]

PAUSES = {"break": "Break", "lunch": "Lunch", "wrap-up": "Questions and wrap-up"}


@dataclass
class Row:
    start: int  # minutes after midnight
    minutes: int
    what: str
    teaching: int = 0
    exercises: int = 0
    episode: str = ""  # "04", "12.3", or "" for a pause
    file: str = ""

    @property
    def pause(self) -> bool:
        return not self.episode


def clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def schedule(fmt: Format, labs: dict[str, Lab]) -> tuple[list[list[Row]], list[str]]:
    """The rows of each day, and the items left out because their lab is not in this checkout.

    A pause next to a missing session is dropped where it would leave two pauses in a row, a pause
    first or last in the day, or a day with no teaching at all (then the day is empty)."""
    days, missing = [], []
    for start, items in fmt.days:
        rows = []
        for item in items:
            word, _, number = item.partition(" ")
            if word in PAUSES:
                rows.append(Row(0, int(number), PAUSES[word]))
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
            if row.pause and (not kept or kept[-1].pause):
                continue  # a pause first in the day, or right after another pause
            kept.append(row)
        wrap_up = [r for r in kept if r.what.startswith("Questions")]
        while kept and kept[-1].pause:
            kept.pop()  # a pause last in the day; the wrap-up returns below
        if kept and wrap_up:
            kept.append(wrap_up[-1])
        h, m = map(int, start.split(":"))
        now = h * 60 + m
        for row in kept:
            row.start, now = now, now + row.minutes
        days.append(kept)
    return days, missing


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
            taught = sum(r.minutes for r in rows if not r.pause)
            end = rows[-1].start + rows[-1].minutes
            out += ["", f"Teaching and exercises: **{taught} min** ({taught / 60:.1f} h); "
                        f"ends at **{clock(end)}**.", ""]
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


def main(argv: list[str]) -> int:
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
