"""The machinery around the labs: the executor's messages, the busy-CPU option, the deck renderer.

Cheap checks (a few kernels of a few seconds each): they run broken mini-labs written into a temporary
folder, never the course's labs.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import psutil
import pytest

import conftest
from tests import execute_labs, render_decks
from tests.execute_labs import BUILD, LABS, LabError, LabKernel


def write_lab(folder: Path, name: str, cells: list[str]) -> Path:
    text = "# %% [markdown]\n# # broken on purpose\n\n" + "".join(
        "# %%\n" + textwrap.dedent(cell).strip() + "\n\n" for cell in cells)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def broken_lab(tmp_path):
    made = []

    def make(name, cells):
        path = write_lab(tmp_path, name, cells)
        made.append(path)
        return path

    yield make
    for path in made:
        (BUILD / (path.stem + ".failed.ipynb")).unlink(missing_ok=True)


def failure_of(kernel):
    """Run a lab that must fail; close its kernel either way; return pytest's record of the LabError."""
    with pytest.raises(LabError) as err:
        try:
            kernel.run()
        finally:
            kernel.close()
    return err


def test_an_error_names_the_lab_the_cell_and_the_last_output(broken_lab):
    lab = broken_lab("98_error_demo.py", ["x = 1", """
        #| label: load-data
        print("opening the files")
        raise FileNotFoundError("no file era5_2000-13.nc")
    """])
    kernel = LabKernel(lab, timeout=120)
    err = failure_of(kernel)
    message = str(err.value)
    assert err.value.kind == "error"
    assert "98_error_demo.py" in message and "#load-data" in message
    assert "FileNotFoundError: no file era5_2000-13.nc" in message
    assert "opening the files" in message
    assert (BUILD / "98_error_demo.failed.ipynb").exists()
    assert not (BUILD / "98_error_demo.ipynb").exists()


def test_a_cell_past_its_limit_fails_fast_and_leaves_nothing_running(broken_lab):
    lab = broken_lab("97_timeout_demo.py", ["""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        print("started", child.pid)
    """, """
        for step in range(100):
            print("step", step, flush=True)
            time.sleep(0.5)
    """])
    kernel = LabKernel(lab, timeout=4)
    start = time.perf_counter()
    err = failure_of(kernel)
    assert time.perf_counter() - start < 60
    message = str(err.value)
    assert err.value.kind == "timeout" and "after 4 s" in message
    assert "cell 3 (`for step in range(100):`)" in message  # unlabelled: number and first line
    assert "step 1" in message and "COURSE_CELL_TIMEOUT" in message
    child = int(kernel.nb.cells[1].outputs[0]["text"].split()[1])
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_a_dead_kernel_is_reported_as_such(broken_lab):
    lab = broken_lab("99_dies_demo.py", ["""
        #| label: boom
        import os, signal
        print("allocating", flush=True)
        import time; time.sleep(0.5)
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
    """])
    kernel = LabKernel(lab, timeout=120)
    err = failure_of(kernel)
    assert err.value.kind == "dead kernel"
    assert "kernel died in #boom" in str(err.value)


def test_the_default_cell_limit_is_minutes_and_scales_with_the_dataset(monkeypatch):
    monkeypatch.delenv("COURSE_CELL_TIMEOUT", raising=False)
    monkeypatch.delenv("COURSE_SIZE", raising=False)
    assert 60 <= execute_labs.cell_timeout() <= 600
    monkeypatch.setenv("COURSE_SIZE", "workshop")
    assert execute_labs.cell_timeout() > 600
    monkeypatch.setenv("COURSE_CELL_TIMEOUT", "0")
    assert execute_labs.cell_timeout() is None
    monkeypatch.setenv("COURSE_CELL_TIMEOUT", "45")
    assert execute_labs.cell_timeout() == 45


def test_labs_that_start_clusters_are_found():
    found = {p.name[:2] for p in sorted(LABS.glob("[0-9][0-9]_*.py")) if conftest.starts_cluster(p)}
    assert {"04", "05", "07"} <= found
    assert not {"01", "02", "03", "06"} & found


def test_burners_keep_every_core_busy_and_stop():
    burners = conftest.Burners(2)
    procs = [psutil.Process(p.pid) for p in burners.procs]
    time.sleep(1.0)
    busy = [p.cpu_times().user for p in procs]
    elapsed = burners.stop()
    assert elapsed > 0.9 and all(t > 0.05 for t in busy), busy
    assert not conftest.Burners.live
    assert all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in procs)


def test_render_decks_renders_the_others_and_names_the_failed_lab(monkeypatch, capsys):
    pages = sorted(render_decks.SLIDES.glob("*.qmd"))
    failing = next(p.stem for p in pages if render_decks.embedded_labs(p))
    calls = []
    monkeypatch.setattr(render_decks, "quarto", lambda: "quarto")
    monkeypatch.setattr(render_decks, "execute_labs", lambda labs: {failing: f"{failing}.py failed in #x: boom"})
    monkeypatch.setattr(render_decks, "_run_quarto", lambda exe, *args: (calls.append(args) or True, ""))
    monkeypatch.setattr(render_decks, "BUILD", Path(render_decks.ROOT / "_build_absent_for_test"))
    assert render_decks.main([]) == 1
    err = capsys.readouterr().err
    assert f"slides/{failing}.qmd: {failing}.py failed in #x: boom" in err
    # the others are rendered page by page: here every deck's notebook is "missing" as well, so only
    # pages that embed no lab are rendered, and each missing notebook is named
    rendered = {Path(a[0]).stem for a in calls if a}
    assert failing not in rendered
    for page in pages:
        if not render_decks.embedded_labs(page):
            assert page.stem in rendered
        elif page.stem != failing:
            assert f"slides/{page.name}: _build/" in err


def test_render_decks_without_quarto_says_what_to_do(monkeypatch, capsys):
    monkeypatch.setattr(render_decks, "quarto", lambda: None)
    assert render_decks.main(["--no-execute"]) == 2
    assert "quarto is not installed" in capsys.readouterr().err
