"""constraints.txt (the versions CI tested) and requirements.txt (what the course needs) agree.

The first checks read the two files only, so they run anywhere: every requirement has a pin, every pin
of a requirement lies in its range, and every other pin names the pinned packages that pull it in
(``# via ...``), so a pin left behind by a removed requirement fails. The last check reads the installed
environment: where it is the one constraints.txt records (CI's venv, installed with ``-c``), the
dependency tree walked from requirements.txt must give the same file. Elsewhere (pixi, a "newest
versions" venv) it skips and says why.
"""

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests import constraints

REQS = constraints.requirements()
PINS = constraints.read()


def test_every_requirement_has_a_pin():
    missing = [r.name for r in REQS if canonicalize_name(r.name) not in PINS]
    assert not missing, (
        f"in requirements.txt but not pinned in constraints.txt: {missing}. Install it "
        f"(python -m pip install -r requirements.txt -c constraints.txt), run the tests, then "
        f"`python tests/constraints.py --write` and commit constraints.txt"
    )


def test_every_pin_lies_in_its_requirements_range():
    outside = []
    for req in REQS:
        pin = PINS.get(canonicalize_name(req.name))
        if pin and not req.specifier.contains(Version(pin[1]), prereleases=True):
            outside.append(f"{req.name}=={pin[1]} (requirements.txt: {req.specifier})")
    assert not outside, (
        f"constraints.txt pins versions that requirements.txt excludes: {outside}. Reinstall with "
        f"-c constraints.txt after changing the pin, or rewrite it with `python tests/constraints.py --write`"
    )


def test_every_other_pin_is_pulled_in_by_a_pinned_package():
    top = {canonicalize_name(r.name) for r in REQS}
    orphans, bad_via = [], []
    for key, (name, _, via) in PINS.items():
        if key in top:
            continue
        if not via:
            orphans.append(name)
        elif not any(canonicalize_name(v) in PINS for v in via):
            bad_via.append(f"{name} (via {', '.join(via)})")
    assert not orphans, (
        f"pinned in constraints.txt but neither in requirements.txt nor pulled in by a package: {orphans}. "
        f"Rewrite it with `python tests/constraints.py --write`"
    )
    assert not bad_via, f"pinned only for packages that are no longer pinned: {bad_via}"


def test_pins_are_plain_versions():
    """No URLs, hashes or local labels: the file constrains versions, pip picks each platform's wheel."""
    text = constraints.CONSTRAINTS.read_text(encoding="utf-8")
    assert "://" not in text.split("\n\n", 1)[-1] and "--hash" not in text
    local = [f"{n}=={v}" for n, v, _ in PINS.values() if "+" in v]
    assert not local, f"local version labels tie a pin to one build: {local}"


def test_constraints_match_the_installed_environment():
    found, problems = constraints.closure(REQS)
    differs = sorted(f"{PINS[k][0]} pinned {PINS[k][1]}, installed {found[k][1]}"
                     for k in PINS.keys() & found.keys() if PINS[k][1] != found[k][1])
    if problems or differs:
        pytest.skip("this environment is not the one constraints.txt records (pixi, a 'newest versions' venv, "
                    f"or a partial install): {(problems + differs)[:3]}")
    assert constraints.CONSTRAINTS.read_text(encoding="utf-8") == constraints.text(found), (
        "the installed dependency tree of requirements.txt differs from constraints.txt (a package added "
        "or dropped): run `python tests/constraints.py --write` and commit constraints.txt"
    )


def test_every_pip_path_installs_the_tested_versions_and_cpu_torch():
    """The README, the home page and the setup message give the same two pip lines CI runs."""
    torch = next(r for r in REQS if r.name == "torch")
    lines = [f"python -m pip install torch{torch.specifier} --index-url https://download.pytorch.org/whl/cpu",
             "python -m pip install -r requirements.txt -c constraints.txt"]
    root = constraints.ROOT
    for page in ("README.md", "slides/index.qmd", "slides/setup_message.qmd"):
        text = (root / page).read_text(encoding="utf-8")
        missing = [line for line in lines if line not in text]
        assert not missing, f"{page}: its pip path lacks {missing}"
    ci = (root / ".ci" / "run").read_text(encoding="utf-8")
    assert "-r requirements.txt -c constraints.txt" in ci, ".ci/run must install with -c constraints.txt"
