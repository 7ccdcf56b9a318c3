# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Many files: GNU parallel
#
# **Teaching:** 25 min · **Exercises:** 15 min
#
# ## Objectives
# - Run one per-file script over a folder of NetCDF files and a folder of images with GNU parallel.
# - Use `-j`, `--joblog` and `--resume`, the replacement strings `{}`, `{/}`, `{.}`, `{/.}`, and
#   `:::` versus `::::`.
# - Compare GNU parallel with `xargs -P` and with a Python process pool running the same function.
# - Recognise when this simple tool is all you need, and when it is not.
#
# ## Why start with a shell tool?
# The lab's NAS holds one NetCDF file per month, and a folder of daily maps. Many analyses are
# *per file*: summarise each month, regrid each file, convert each image. The files do not depend on
# each other, so the work is *embarrassingly parallel*: run the same program on several files at once,
# one per core. You do not need Dask, MPI or even Python for that. GNU parallel runs **any** command
# (a Python script, CDO, NCO, GDAL, an R script) over a list of inputs, keeps the cores busy, collects
# the output in order, logs every job and resumes an interrupted run.
#
# The per-file job in this lab is a small script, `labs/course/file_stats.py`: for each file it prints
# one CSV line with the count, mean, minimum and maximum of a variable (or of an image's grey level).
# With `--regrid 0.5` it first interpolates every map to a 0.5° grid, a heavier job of the kind
# people really run per file. The same function, `file_stats.stats(path)`, is what the Python process
# pool runs later, so every method must produce identical numbers. Section 1 prints its code.
#
# **How this lab runs shell commands.** Each command is printed after a `$`, exactly as you would type
# it in a terminal opened in `labs/`, and then run with Python's `subprocess`, so that the lab also
# works as a script, a notebook and a test. Two shell variables stand for folders:
# `DATA` (the NetCDF files) and `OUT` (`_build/06_gnu_parallel/`, where every output goes).
# GNU parallel needs a POSIX shell: on Windows, use WSL. Where it is not installed, its cells say how
# to install it and the Python part of the lab still runs.

# %%
import inspect
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib.pyplot as plt

import course
from course import bench, era5, file_stats

LABS = Path(course.__file__).resolve().parents[1]  # labs/: the commands below run here
DATA_DIR = course.dataset()
IMAGE_DIR = course.images()
OUT = course.BUILD / "06_gnu_parallel"
shutil.rmtree(OUT, ignore_errors=True)  # a fresh start: an old joblog would make --resume skip everything
(OUT / "per_file").mkdir(parents=True)
N = course.usable_cores()
if era5.own_data():  # your files (COURSE_ERA5): the ones with t2m, linked into one folder under the names used below
    DATA_DIR = era5.writable(OUT / "own_files")
    for i, path in enumerate(era5.files_with("t2m")):
        (DATA_DIR / f"era5_{i:05d}.nc").symlink_to(path)
    era5.report()

files = sorted(DATA_DIR.glob("era5_*.nc"))
images = sorted(IMAGE_DIR.glob("*.png"))


def rel(path):
    """A path as you would type it in a terminal in labs/ (relative when it can be)."""
    try:
        return os.path.relpath(path, LABS)
    except ValueError:  # Windows: another drive
        return str(path)


# The commands run in labs/, with `python` meaning this kernel's Python, and the folders in variables.
ENV = dict(os.environ, DATA=rel(DATA_DIR), IMAGES=rel(IMAGE_DIR), OUT=rel(OUT))
ENV["PATH"] = str(Path(sys.executable).parent) + os.pathsep + ENV.get("PATH", "")
SHELL = shutil.which("bash") or shutil.which("sh")


def show(command, width=84):
    """Print a command after a `$`, broken over lines with `\\` where it is too long to read at once
    (only between words, never inside quotes, so the printed command still runs as typed)."""
    words = shlex.shlex(command, posix=False)
    words.whitespace_split = True
    lines = [""]
    for word in words:
        if lines[-1] and len(lines[-1]) + 1 + len(word) > width:
            lines.append(word)
        else:
            lines[-1] = f"{lines[-1]} {word}" if lines[-1] else word
    print("$ " + " \\\n    ".join(lines))


def shell(command, show_output=True):
    """Print `command` as typed at a prompt in labs/, run it, return (stdout, seconds)."""
    show(command)
    start = time.perf_counter()
    done = subprocess.run(command, shell=True, executable=SHELL, cwd=LABS, env=ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if show_output and done.stdout:
        print(done.stdout, end="")
    if done.returncode != 0:
        raise RuntimeError(f"the command above failed (exit status {done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout, seconds


def find_tool(name, version_flag, expect):
    """True if `name` is on PATH and its version line mentions `expect` (a POSIX shell is needed too)."""
    exe = shutil.which(name)
    if exe is None or os.name != "posix" or SHELL is None:
        return False
    try:
        done = subprocess.run([exe, *version_flag], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return expect in (done.stdout + done.stderr)


HAVE_PARALLEL = find_tool("parallel", ["--will-cite", "--version"], "GNU parallel")
HAVE_XARGS = find_tool("xargs", ["--help"], "-P")
INSTALL_PARALLEL = (
    "GNU parallel is not installed here (or `parallel` is the unrelated one from moreutils), so this cell "
    "only prints its command. Install it with `sudo apt install parallel`, `brew install parallel` or "
    "`conda install -c conda-forge parallel` (on Windows: inside WSL); the Python-pool part of the lab runs anyway."
)
INSTALL_XARGS = "xargs with -P is not available here, so this cell only prints its command (on Windows: use WSL)."


_told = set()


def skip(command, why):
    """Print the command a learner would type, and why it did not run (in full only the first time)."""
    show(command)
    print(f"[not run] {why}" if why not in _told else "[not run: see the note above about installing it]")
    _told.add(why)


print(f"{len(files)} NetCDF files in DATA={ENV['DATA']}, {sum(f.stat().st_size for f in files) / 2**20:.0f} MB")
print(f"{len(images)} PNG images in IMAGES={ENV['IMAGES']}")
print(f"GNU parallel: {'found' if HAVE_PARALLEL else 'NOT found'} · xargs -P: {'found' if HAVE_XARGS else 'NOT found'}")
print(course.hardware())

# %% [markdown]
# **In your own terminal.** The variables above exist only inside this lab's commands. To type the
# commands yourself, open a terminal in `labs/` (the course environment activated, so `python` is the
# course's) and paste the line the next cell prints; then every command below runs as shown.

# %%
#| label: export-line
export_line = "export " + " ".join(f"{name}={shlex.quote(ENV[name])}" for name in ("DATA", "OUT", "IMAGES"))
print(export_line + ' && mkdir -p "$OUT"')

# %% [markdown]
# ## 1. One file, one process *(core)*
#
# This is the function every method in this lab runs, once per file; the command-line part of the
# script (`main`) calls it for each file named on the command line and prints one CSV line per file:

# %%
#| label: stats-source
print(inspect.getsource(file_stats.stats))

# %% [markdown]
#
# First run the per-file script by hand on one file. Then ask the question that decides how to
# parallelise: how long is the *work* compared with *starting Python*? Every job that GNU parallel or
# `xargs` runs is a new process, which starts Python and imports NumPy and netCDF4 before it reads a
# single byte. A process pool starts its Python processes once and reuses them.

# %%
#| label: one-file
one_file = files[0]
print(f"$ python course/file_stats.py --header $DATA/{one_file.name}")
start = time.perf_counter()  # run without a shell, so that this cell works on Windows too
done = subprocess.run([sys.executable, "course/file_stats.py", "--header", str(one_file)], cwd=LABS,
                      capture_output=True, text=True)
one_file_s = time.perf_counter() - start
print(done.stdout or done.stderr, end="")
file_stats.stats(one_file)  # once to import netCDF4 here, so the timing below is the work alone
start = time.perf_counter()
file_stats.stats(one_file)
work_s = time.perf_counter() - start
startup_s = max(one_file_s - work_s, 0.0)
print(f"\nwhole command {one_file_s:.3f} s = work inside Python {work_s:.3f} s + start-up {startup_s:.3f} s")
print(course.hardware())

# %% [markdown]
# ## 2. GNU parallel in one minute *(core)*
#
# `parallel COMMAND ::: INPUTS` runs `COMMAND` once per input, replacing `{}` by the input, with as
# many jobs at a time as the machine has cores (`-j 4` sets four; `-j 50%` half the cores).
#
# **The citation notice.** GNU parallel is written by a researcher who asks to be cited when it helps
# your research. The first time you run it interactively, it prints a notice and asks you to run
# `parallel --citation`, read it and type `will cite`; that creates the file `~/.parallel/will-cite`
# and the notice never comes back. In scripts and batch jobs, nobody is there to read it: add
# `--will-cite` to the command, as every command in this lab does (or create the file once with
# `mkdir -p ~/.parallel && touch ~/.parallel/will-cite`). Either way: if it helped, cite it.
#
# **Replacement strings** cut the input apart, so the command can name its output after its input:
#
# | string | meaning | for `../data/era5/small/era5_2000-01.nc` |
# |---|---|---|
# | `{}` | the input | `../data/era5/small/era5_2000-01.nc` |
# | `{/}` | the file name (basename) | `era5_2000-01.nc` |
# | `{.}` | the input without its extension | `../data/era5/small/era5_2000-01` |
# | `{/.}` | the basename without extension | `era5_2000-01` |
# | `{#}` | the job number | `1` |

# %%
#| label: replacement-strings
command = "parallel --will-cite -k echo {} {/} {.} {/.} {#} ::: $DATA/" + " $DATA/".join(f.name for f in files[:2])
if HAVE_PARALLEL:
    shell(command)
else:
    skip(command, INSTALL_PARALLEL)

# %% [markdown]
# **Where the inputs come from.** `:::` is followed by the inputs themselves; `::::` by *files that
# list* the inputs, one per line (the way to go when there are too many for one command line, or when
# another program made the list); with neither, parallel reads the list from standard input.
# Two `:::` sources give every combination, numbered `{1}` and `{2}`. `--dry-run` prints the
# commands without running them: always try it first.

# %%
#| label: input-sources
(OUT / "files.txt").write_text("".join(f"{rel(f)}\n" for f in files))
commands = [
    "parallel --will-cite --dry-run python course/file_stats.py {} :::: $OUT/files.txt | head -n 3",
    "parallel --will-cite --dry-run python course/file_stats.py --var {1} {2} ::: t2m sst ::: "
    + " ".join(f"$DATA/{f.name}" for f in files[:2]),
]
for command in commands:
    if HAVE_PARALLEL:
        shell(command)
    else:
        skip(command, INSTALL_PARALLEL)

# %% [markdown]
# ### Exercise 1: one output file per input (4 min)
# Write one CSV per month for the sea-surface temperature (`--var sst`) into `$OUT/sst/`, named after
# the input file (`era5_2000-01.csv` for `era5_2000-01.nc`). Check with `--dry-run` first.
# Then combine them into one file.
#
# <details><summary>Solution</summary>
#
# ```bash
# mkdir -p $OUT/sst
# parallel --will-cite --dry-run 'python course/file_stats.py --var sst {} > $OUT/sst/{/.}.csv' ::: $DATA/era5_*.nc
# parallel --will-cite           'python course/file_stats.py --var sst {} > $OUT/sst/{/.}.csv' ::: $DATA/era5_*.nc
# cat $OUT/sst/*.csv > $OUT/sst.csv
# ```
# The quotes matter: without them your shell would apply `>` to parallel itself and all output
# would land in one file named literally `{/.}.csv`. `{/.}` is the basename without extension.
# </details>

# %% [markdown]
# ### Exercise 2: every combination (3 min)
# Summarise `t2m`, `sst` and `tp` for every file with **one** command. How many jobs does it run?
# Count them without running them.
#
# <details><summary>Solution</summary>
#
# ```bash
# parallel --will-cite --dry-run python course/file_stats.py --var {1} {2} ::: t2m sst tp ::: $DATA/era5_*.nc | wc -l
# ```
# Two input sources give every combination: 3 variables × the number of files. Drop `--dry-run` and
# `| wc -l` (and add `-k > all.csv`) to run them.
# </details>

# %% [markdown]
# ## 3. The whole dataset, with a job log *(core)*
#
# Now the real run: every monthly file, `-j` set to this machine's cores, `-k` to keep the output in
# the order of the inputs (without it, lines come in the order the jobs finish), and `--joblog` to
# record, for every job, when it started, how long it ran and its exit status. The joblog is your
# audit trail: a job with `Exitval` other than 0 failed, and `--resume-failed` reruns just those.

# %%
#| label: parallel-run
parallel_command = f"parallel --will-cite -j {N} -k --joblog $OUT/joblog.tsv python course/file_stats.py {{}} ::: $DATA/era5_*.nc > $OUT/parallel.csv"
times = {}  # method -> seconds for all NetCDF files
if HAVE_PARALLEL:
    _, times["GNU parallel"] = shell(parallel_command)
    rows_parallel = file_stats.parse_csv((OUT / "parallel.csv").read_text())
    print(f"{len(rows_parallel)} lines in $OUT/parallel.csv in {times['GNU parallel']:.2f} s")
    print(course.hardware())
    print("$ head -n 2 $OUT/parallel.csv")
    print("".join((OUT / "parallel.csv").read_text().splitlines(keepends=True)[:2]), end="")
else:
    skip(parallel_command, INSTALL_PARALLEL)
    rows_parallel = None

# %%
#| label: joblog
if HAVE_PARALLEL:
    joblog = (OUT / "joblog.tsv").read_text().splitlines()
    print("$ head -n 4 $OUT/joblog.tsv   (some columns left out, Command shortened)")
    for line in joblog[:4]:
        seq, host, start, runtime, send, receive, exitval, signal, cmd = line.split("\t")[:9]
        print(f"{seq:<4} {start:<15.15} {runtime:<11.11} {exitval:<8} {cmd[:36] + ('…' if len(cmd) > 36 else '')}")
    exit_values = [int(line.split("\t")[6]) for line in joblog[1:]]
    print(f"{len(exit_values)} jobs, {sum(v != 0 for v in exit_values)} failed")
else:
    joblog, exit_values = [], []
    print("[no joblog: GNU parallel is not installed]")

# %% [markdown]
# ### Exercise 3: a bad file (4 min)
# Create a broken file, `echo "not NetCDF" > $OUT/era5_broken.nc`, and run the joblog command of
# section 3 on `$DATA/era5_*.nc $OUT/era5_broken.nc`. What do the terminal, the output file and the
# joblog show? Which option reruns only the failed job once you have fixed (or removed) the file?
#
# <details><summary>Solution</summary>
#
# `file_stats.py` prints one line on stderr (`file_stats: cannot summarise ...`) and exits with status
# 1; the other files are processed as usual and parallel's own exit status is the number of failed jobs.
# In the joblog the broken file's line has `Exitval` 1. `--joblog $OUT/joblog.tsv --resume-failed`
# reruns the jobs whose exit value was not 0 (and any job not in the log yet); `--retries 3` retries a
# job automatically, useful for flaky network file systems.
# </details>

# %% [markdown]
# ## 4. Resume an interrupted run *(core)*
#
# Long runs get interrupted: the batch system's wall-time runs out, the laptop sleeps, one bad file
# stops everything. With `--joblog LOG --resume`, parallel skips every job already recorded in the log
# and runs only the rest. It pays off when each job writes its **own** output file, named after
# its input with `{/.}`: a half-finished run leaves complete files behind, never a half-written
# shared one.
#
# To simulate a run that stopped half way, the first run below gets only the first half of the
# file list (on standard input, the third way to feed parallel). The second run gets the whole list,
# with `--resume`.

# %%
#| label: resume
half = len(files) // 2
job = f"--will-cite -j {N} --joblog $OUT/resume.tsv --resume 'python course/file_stats.py {{}} > $OUT/per_file/{{/.}}.csv'"
first = f"head -n {half} $OUT/files.txt | parallel {job}"
second = f"parallel {job} :::: $OUT/files.txt"
if HAVE_PARALLEL:
    shell(first)
    ran_first = len((OUT / "resume.tsv").read_text().splitlines()) - 1
    shell(second)
    ran_second = len((OUT / "resume.tsv").read_text().splitlines()) - 1 - ran_first
    per_file_outputs = sorted((OUT / "per_file").glob("*.csv"))
    print(f"first run: {ran_first} jobs · resumed run: {ran_second} more jobs")
    print(f"{len(per_file_outputs)} per-file CSVs for {len(files)} files")
else:
    skip(first, INSTALL_PARALLEL)
    skip(second, INSTALL_PARALLEL)
    ran_first = ran_second = None
    per_file_outputs = []

# %% [markdown]
# ## 5. The same job four other ways *(optional)*
#
# **Serial**: a plain loop over the files, in this Python process. **A Python process pool**:
# `ProcessPoolExecutor.map` sends each file name to one of `N` worker processes, which run
# `file_stats.stats` (that is why the function lives in an importable module: a worker process must
# be able to import it). **xargs -P**: the classic Unix tool runs the command with `-n 1` input per
# process, `-P` processes at a time. It has no joblog, no `--resume`, no replacement strings, and does
# not keep the output of parallel jobs apart: all jobs write into the same output at once, so a job
# that writes a line in two pieces can get another job's line in between (we saw it happen while
# writing this lab; `course/file_stats.py` now writes each line in a single write). GNU parallel collects
# each job's output and prints it whole. But `xargs` is on every Linux and macOS machine. Finally **GNU parallel -X**, which hands each job several files at once
# (section 6 explains why that matters).

# %%
start = time.perf_counter()
rows_serial = sorted((file_stats.stats(f) for f in files), key=lambda r: r["file"])
times["serial loop"] = time.perf_counter() - start

start = time.perf_counter()
with ProcessPoolExecutor(max_workers=N) as pool:
    rows_pool = sorted(pool.map(file_stats.stats, files), key=lambda r: r["file"])
times["Python pool"] = time.perf_counter() - start  # includes starting the worker processes



def timed_rows(method, command, csv, installed, install_hint):
    """Run `command` (if its tool is installed), note its time under `method`, read the CSV it wrote."""
    if not installed:
        skip(command, install_hint)
        return None
    _, times[method] = shell(command)
    return file_stats.parse_csv((OUT / csv).read_text())


batched_nc_command = f"parallel --will-cite -j {N} -X python course/file_stats.py ::: $DATA/era5_*.nc > $OUT/parallel_X.csv"
rows_parallel_batched = timed_rows("GNU parallel -X", batched_nc_command, "parallel_X.csv", HAVE_PARALLEL,
                                   INSTALL_PARALLEL)
xargs_command = f"ls $DATA/era5_*.nc | xargs -P {N} -n 1 python course/file_stats.py > $OUT/xargs.csv"
rows_xargs = timed_rows("xargs -P", xargs_command, "xargs.csv", HAVE_XARGS, INSTALL_XARGS)

# %%
#| label: methods-table
METHODS = ["serial loop", "Python pool", "GNU parallel", "GNU parallel -X", "xargs -P"]
print(f"{len(files)} NetCDF files, {N} workers · {course.hardware()}")
course.table([{"method": m, "seconds": f"{times[m]:.2f}", "speed-up": f"{times['serial loop'] / times[m]:.2f}×",
               "files/s": f"{len(files) / times[m]:.1f}"} if m in times else
              {"method": m, "seconds": "not installed", "speed-up": "", "files/s": ""} for m in METHODS], align="lrrr")
same = [m for m, rows in [("Python pool", rows_pool), ("GNU parallel", rows_parallel),
                          ("GNU parallel -X", rows_parallel_batched), ("xargs -P", rows_xargs)]
        if rows is not None and rows == rows_serial]
print(textwrap.fill(f"identical to the serial results: {', '.join(same)}", 90))
# F files, N processes, work w and start-up s per file: serial F*w, one process per file about F*(w+s)/N.
if N > 1:
    break_even_s = startup_s / (N - 1)
    verdict = "worth it" if work_s > break_even_s else "not worth it: give each process many files (-X) or use a pool"
    print(textwrap.fill(f"one process per file beats the serial loop when a file needs more than start-up/(N-1) = "
                        f"{break_even_s:.3f} s of work; here it needs {work_s:.3f} s, so: {verdict}", 90))

# %%
#| label: fig-methods
#| fig-cap: "Time to summarise every monthly NetCDF file: a serial loop, a Python process pool, GNU parallel with one process per file, GNU parallel -X with many files per process, and xargs -P; measured on the machine named under the chart."
#| fig-alt: "Horizontal bar chart of wall-clock seconds for five ways of running the per-file statistics over all NetCDF files, one bar per method, each labelled with its seconds; shorter bars are faster. The methods that start one Python process per file pay that start-up time for every file."
COLOURS = {"serial loop": "#000000", "Python pool": "#0072B2", "GNU parallel": "#009E73",
           "GNU parallel -X": "#56B4E9", "xargs -P": "#E69F00"}
fig, ax = plt.subplots(figsize=(10, 4.8))
measured = [m for m in METHODS if m in times][::-1]  # first method on top
bars = ax.barh(measured, [times[m] for m in measured], color=[COLOURS[m] for m in measured])
ax.bar_label(bars, labels=[f"{times[m]:.2f} s" for m in measured], padding=4)
ax.set_xlabel("wall-clock seconds (shorter is better)")
ax.set_xlim(0, 1.25 * max(times.values()))
ax.set_title(f"{len(files)} monthly files, {N} workers", loc="left")
fig.text(0.01, 0.01, course.hardware(), fontsize=10, color="#555555")
fig.tight_layout(rect=(0, 0.05, 1, 1))
plt.show()

# %% [markdown]
# Read the chart with section 1 in mind. With `F` files, `N` processes, work `w` and start-up `s` per
# file, the serial loop takes `F·w` and one process per file about `F·(w + s)/N`: starting a process
# per file pays off only when `w > s/(N − 1)`. The last line of the table does that sum with the
# numbers measured here, on this dataset size. When reading one variable takes less time than
# starting Python, every GNU parallel and `xargs` job is mostly start-up: one process per file is
# then *slower* than the plain loop, `-X` (few processes, many files each) recovers most of the loss,
# and the pool, which starts its workers once, is the best of the parallel methods. That is the
# **overhead lesson**; the next section gives the same tools a job worth parallelising.
#
# ## 5b. A per-file job that pays: regridding *(optional)*
#
# Real per-file jobs are heavier: regridding with CDO, running a model once per parameter set,
# detecting features in each image, seconds to minutes per file. Here every map of each file is
# interpolated to a 0.5° grid with cubic splines before the statistics (`--regrid 0.5`; the code
# is below). Same files, same tools, only the work per file changes.

# %%
#| label: regrid-source
def without_docstring(function):
    """A function's source code without its docstring (the slide has room for the code only)."""
    head, _, rest = inspect.getsource(function).partition('"""')
    return head.rstrip() + "\n" + rest.partition('"""')[2].lstrip("\n")


print(without_docstring(file_stats.regrid_maps))

# %%
#| label: regrid-run
REGRID = 0.5  # degrees
start = time.perf_counter()
file_stats.stats(files[0], regrid=REGRID)
regrid_work_s = time.perf_counter() - start  # the work for one file, inside Python (no start-up)
heavy_times = {}
start = time.perf_counter()
heavy_serial = sorted((file_stats.stats(f, regrid=REGRID) for f in files), key=lambda r: r["file"])
heavy_times["serial loop"] = time.perf_counter() - start
heavy_command = f"parallel --will-cite -j {N} -k python course/file_stats.py --regrid {REGRID} {{}} ::: $DATA/era5_*.nc > $OUT/regrid.csv"
if HAVE_PARALLEL:
    _, heavy_times["GNU parallel"] = shell(heavy_command)
    heavy_parallel = file_stats.parse_csv((OUT / "regrid.csv").read_text())
else:
    skip(heavy_command, INSTALL_PARALLEL)
    heavy_parallel = None
heavy_load = bench.load()  # how busy the machine was while we measured

# %%
#| label: regrid-table
print(f"{len(files)} files regridded to {REGRID}°, {N} workers: work {regrid_work_s:.2f} s per file "
      f"against a start-up of {startup_s:.2f} s")
print(course.hardware())
course.table([{"method": m, "seconds": f"{t:.2f}", "speed-up vs serial": f"{heavy_times['serial loop'] / t:.2f}×"}
              for m, t in heavy_times.items()], align="lrr")
if "GNU parallel" in heavy_times:
    gain = heavy_times["serial loop"] / heavy_times["GNU parallel"]
    print(textwrap.fill(f"GNU parallel: {gain:.2f}× the serial loop with {N} job slots; {heavy_load}"
                        + ("" if gain > 1 else " — the cores were busy with other work, so there was nothing to gain"), 90))

# %% [markdown]
# Now the work per file is larger than the start-up, and GNU parallel runs the unchanged script on
# all cores: its speed-up approaches `N` when the cores are free. Parallelism cannot create cores,
# though: when other programs keep them busy (the load average printed above counts the processes
# that want a core), the jobs share them and the gain shrinks, or vanishes. A process pool gives the
# same gain for Python functions; GNU parallel runs any program.
# Rule of thumb: one job should run for **seconds or more**; if it does not, give each job several files.
#
# ## 6. Many small files: the images *(core)*
#
# The image folder is the extreme case: hundreds of small files, milliseconds of work each. One
# process per image spends nearly all its time starting Python. `-X` tells GNU parallel to put as many
# inputs on each command line as fit (and to split them evenly over the `-j` job slots), so a handful of
# processes do all the work; `xargs -n 100` does the same by hand. Below, one process per image runs
# on a sample of the images only (all of them would take too long), `-X` and the pool on all of them.

# %%
#| label: images-table
sample = images[: min(len(images), 8 * N)]
(OUT / "image_sample.txt").write_text("".join(f"{rel(p)}\n" for p in sample))
image_times = {}  # method -> (images, seconds)
per_image_command = f"parallel --will-cite -j {N} python course/file_stats.py {{}} :::: $OUT/image_sample.txt > $OUT/images_one_each.csv"
batched_command = f"parallel --will-cite -j {N} -X python course/file_stats.py ::: $IMAGES/*.png > $OUT/images_batched.csv"
if HAVE_PARALLEL:
    _, seconds = shell(per_image_command)
    image_times["parallel, one process per image"] = (len(sample), seconds)
    _, seconds = shell(batched_command)
    image_times["parallel -X, many images per process"] = (len(images), seconds)
    rows_images_one_each = file_stats.parse_csv((OUT / "images_one_each.csv").read_text())
    rows_images_batched = file_stats.parse_csv((OUT / "images_batched.csv").read_text())
else:
    skip(per_image_command, INSTALL_PARALLEL)
    skip(batched_command, INSTALL_PARALLEL)
    rows_images_one_each = rows_images_batched = None

start = time.perf_counter()
with ProcessPoolExecutor(max_workers=N) as pool:
    rows_images_pool = sorted(pool.map(file_stats.stats, images, chunksize=32), key=lambda r: r["file"])
image_times["Python pool, chunksize=32"] = (len(images), time.perf_counter() - start)

print(course.hardware())
course.table([{"method": method, "images": n, "seconds": f"{s:.2f}", "ms per image": f"{1000 * s / n:.1f}"}
              for method, (n, s) in image_times.items()], align="lrrr")

# %% [markdown]
# `chunksize=32` is the pool's version of `-X`: each message to a worker carries 32 file names
# instead of one, so the workers spend their time working rather than waiting for the next name.

# %% [markdown]
# ### Exercise 4: batch the images by hand (4 min)
# Make `xargs` process the images 100 per process, 2 processes at a time. Compare with `parallel -X`.
# Why is one process per image so much slower?
#
# <details><summary>Solution</summary>
#
# ```bash
# ls $IMAGES/*.png | xargs -P 2 -n 100 python course/file_stats.py > $OUT/images_xargs.csv
# ```
# Each process pays Python's start-up and imports once (section 1 measured it), then reads 100 images
# in milliseconds each. With one process per image, start-up is paid for every image and dwarfs the
# work. `parallel -X` picks the batch size itself, splitting the list evenly over the job slots.
# </details>

# %% [markdown]
# ## 7. When is GNU parallel all you need? *(core)*
#
# **Enough**, when the work splits into independent files (or parameter values), each job fits in
# one process's memory, and the results are small files you combine afterwards (`cat`, a short Python
# script). Then it is hard to beat: no code changes, any language, a joblog, resumable runs, and it
# scales from a laptop to a whole HPC node (`parallel -j $SLURM_CPUS_PER_TASK` inside a batch job)
# and across nodes (`--sshloginfile`). Add `--bar` or `--eta` to see progress.
#
# **Not enough**, when
# - one file is bigger than memory, or one job must see many files at once (a climatology over all
#   months, a rolling window across file boundaries): that is episode 07, Xarray with Dask;
# - the jobs are so short that start-up dominates and batching with `-X` is awkward: use a process pool
#   or Dask, which start their workers once;
# - jobs must exchange data while they run: that is MPI (episode 05) or Dask.

# %% [markdown]
# ## Key points
# - Independent files are embarrassingly parallel: run the same script on many files at once.
# - `parallel --will-cite -j N --joblog LOG CMD {} ::: inputs` runs any command, logs every job, and
#   `--resume` / `--resume-failed` continue after an interruption.
# - `{/}`, `{.}`, `{/.}` name each output after its input; one output file per input makes runs resumable.
# - `:::` takes inputs, `::::` takes files that list them; two sources give every combination.
# - A new process per file costs a Python start-up: keep jobs long (seconds), batch small files with `-X`,
#   or use a process pool, whose workers start once. All of them must give identical results.

# %% [markdown]
# ## Checks
# Run by `pytest labs/06_gnu_parallel.py`; the slides never show this cell.

# %% tags=["checks"]
def test_found_the_data():
    assert len(files) >= 2 and len(images) >= 2
    assert len(rows_serial) == len(files) and all(r["count"] > 0 for r in rows_serial)


def test_every_method_gives_identical_results():
    assert rows_pool == rows_serial
    if HAVE_PARALLEL:
        assert rows_parallel == rows_serial
        assert rows_parallel_batched == rows_serial
    if HAVE_XARGS:
        assert rows_xargs == rows_serial


def test_joblog_records_every_job():
    if HAVE_PARALLEL:
        assert len(exit_values) == len(files) and all(v == 0 for v in exit_values)


def test_resume_ran_only_the_missing_jobs():
    if HAVE_PARALLEL:
        assert (ran_first, ran_second) == (half, len(files) - half)
        assert [p.stem for p in per_file_outputs] == [f.stem for f in files]
        resumed = file_stats.parse_csv("".join(p.read_text() for p in per_file_outputs))
        assert resumed == rows_serial


def test_regrid_job_identical_and_heavier():
    assert len(heavy_serial) == len(files)
    if HAVE_PARALLEL:
        assert heavy_parallel == heavy_serial
    assert all(r["count"] > rows_serial[0]["count"] for r in heavy_serial[:1])  # a finer grid: more values
    assert regrid_work_s > work_s  # the heavier job is heavier (robust: several times the work)


def test_images_identical_whichever_way():
    pool_by_name = {r["file"]: r for r in rows_images_pool}
    assert len(pool_by_name) == len(images)
    if HAVE_PARALLEL:
        assert rows_images_batched == rows_images_pool
        assert rows_images_one_each == [pool_by_name[p.name] for p in sample]


course.run_checks(globals())
