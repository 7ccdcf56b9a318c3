"""constraints.txt: the exact versions of the package set CI tested, read from the installed environment.

``requirements.txt`` says what the course needs (``xarray>=2024.10``); ``constraints.txt`` records the
versions that passed CI together (``xarray==2026.1.0``), for every package ``requirements.txt`` pulls in,
directly or through another package. Installing with both gives a learner next week the environment
CI tested today, not whatever is newest on that morning:

    python -m pip install -r requirements.txt -c constraints.txt

This script writes the file from the environment it runs in (the venv CI builds), walking
requirements.txt's dependency tree through the installed packages' metadata:

    python tests/constraints.py --write    # rewrite constraints.txt from this environment
    python tests/constraints.py --check    # exit 1 if constraints.txt differs from this environment

Each line is ``name==version``; a package that is not itself in requirements.txt says which packages
pull it in (``# via dask, xarray``), which is how ``tests/test_constraints.py`` tells a leftover pin
from a needed one without installing anything. Local version labels are dropped (PyTorch's CPU wheel
is ``2.13.0+cpu``; ``torch==2.13.0`` accepts it and PyPI's build alike). No URLs, no hashes: the file
constrains versions, and pip still chooses the wheel for each platform.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements.txt"
CONSTRAINTS = ROOT / "constraints.txt"

HEADER = """\
# The exact versions CI tested, for every package requirements.txt pulls in. Install with
#   python -m pip install -r requirements.txt -c constraints.txt
# Written by `python tests/constraints.py --write` from the environment CI builds (Linux, {python});
# tests/test_constraints.py fails when it and requirements.txt drift apart. Packages that only
# another platform needs (e.g. colorama on Windows) are not constrained.
"""


def requirements(path: Path = REQUIREMENTS) -> list[Requirement]:
    """The requirements in a requirements file, comments and blank lines skipped."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(Requirement(line))
        except InvalidRequirement as error:
            raise ValueError(f"{path.name}:{number}: cannot read {line!r}: {error}") from None
    return found


def read(path: Path = CONSTRAINTS) -> dict[str, tuple[str, str, list[str]]]:
    """{canonical name: (name as written, version, [the packages it is 'via'])} from constraints.txt."""
    pins = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text, _, comment = line.partition("#")
        text = text.strip()
        if not text:
            continue
        name, sep, version = text.partition("==")
        if not sep or not version.strip() or any(c in text for c in "<>!~;@ "):
            raise ValueError(f"{path.name}:{number}: expected 'name==version', got {text!r}")
        comment = comment.strip()
        via = [v.strip() for v in comment[4:].split(",")] if comment.startswith("via ") else []
        pins[canonicalize_name(name)] = (name.strip(), version.strip(), via)
    return pins


def _installed() -> dict[str, metadata.Distribution]:
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist)
    return found


def closure(reqs: list[Requirement] | None = None) -> tuple[dict[str, tuple[str, str, set[str]]], list[str]]:
    """Every installed package that requirements.txt pulls in on this platform.

    Returns ({canonical name: (name, version, {names of the packages that require it})}, [problems]):
    a problem is a requirement that applies here but is not installed."""
    reqs = requirements() if reqs is None else reqs
    installed = _installed()
    environment = default_environment()
    found: dict[str, tuple[str, str, set[str]]] = {}
    problems: list[str] = []
    top = {canonicalize_name(r.name) for r in reqs}
    queue = [(r, None) for r in reqs]
    processed: set[tuple[str, str]] = set()  # (package, requirement line) already followed
    while queue:
        req, parent = queue.pop(0)
        name = canonicalize_name(req.name)
        dist = installed.get(name)
        if dist is None:
            problems.append(f"{req.name} (needed by {parent or 'requirements.txt'}) is not installed")
            continue
        display, version = dist.metadata["Name"], Version(dist.version).public
        entry = found.setdefault(name, (display, version, set()))
        if parent and name not in top:
            entry[2].add(parent)
        for line in dist.requires or []:
            if (name, line) in processed:
                continue
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({**environment, "extra": extra})
                                         for extra in ["", *sorted(req.extras)]):
                processed.add((name, line))
                queue.append((sub, display))
    return found, problems


def text(found: dict[str, tuple[str, str, set[str]]] | None = None) -> str:
    """constraints.txt as this environment would write it."""
    if found is None:
        found, problems = closure()
        if problems:
            raise SystemExit("cannot write constraints.txt from this environment:\n  " + "\n  ".join(problems))
    top = {canonicalize_name(r.name) for r in requirements()}
    python = f"Python {sys.version_info.major}.{sys.version_info.minor}"
    lines = [HEADER.format(python=python)]
    for key in sorted(found):
        name, version, via = found[key]
        line = f"{name}=={version}"
        if key not in top:
            line += "  # via " + ", ".join(sorted(via, key=str.lower))
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if "--write" in argv:
        CONSTRAINTS.write_text(text(), encoding="utf-8")
        print(f"wrote {CONSTRAINTS.relative_to(ROOT)} ({len(read())} packages)")
        return 0
    if "--check" in argv:
        now = text()
        if not CONSTRAINTS.exists() or CONSTRAINTS.read_text(encoding="utf-8") != now:
            print("constraints.txt differs from this environment: run `python tests/constraints.py --write` "
                  "in the environment CI tested, and commit it", file=sys.stderr)
            return 1
        print("constraints.txt matches this environment")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
