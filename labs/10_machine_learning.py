# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 · Machine learning with Dask: training on more data than memory
#
# **Teaching:** 45 min · **Exercises:** 35 min
#
# ## Objectives
# - Use scikit-learn's estimator interface: `fit`, `predict_proba`, a pipeline, and a split **in time**.
# - Score a probabilistic forecast with skill scores against hard baselines, not with accuracy.
# - Tell a *compute-bound* problem (many fits on data that fit) from a *data-bound* one (data that do not fit).
# - Parallelise a grid search with joblib: one core, local processes (loky) and a Dask cluster.
# - Train block by block with `dask_ml`'s `Incremental` and **measure** that the workers' memory stays
#   flat while the training rows grow.
# - Know when Dask is needed and when a plain loop or one machine's memory does the job.
# - Know which parts of the ecosystem are maintained (xgboost.dask) and which are broken (parts of dask-ml).
#
# ## Why this episode?
# A flood modeller wants a quick rain forecast: *will it rain at this grid point in the next time step,
# given the weather there now?* A year of a coarse grid fits in memory and scikit-learn does the job in
# a few lines. Three years at 1° do not fit on a laptop, and a decade at ERA5's resolution never will.
# This lab lets a model see the data in pieces and **measures** two things: that the workers' memory
# does not grow with the data, and that the model has skill on a later period it never saw.
#
# **The data are synthetic.** The course's ERA5-like files (`data/era5_like.py`) are plausible weather,
# not real weather: rain comes from its own random "wetness" fields, which persist for hours to a day
# or two, against a climatology (a wet ITCZ that follows the sun, dry subtropics, storm tracks,
# afternoon showers over land). So every skill score below measures how well a model recovers *the
# generator's* rules: how much persistence and climatology there are, and nothing of real physics. The
# methods (split in time, baselines, skill scores, memory measured) carry over to real ERA5 unchanged;
# the numbers do not.

# %%
import gc
import textwrap
import time
import warnings

import dask
import dask.array as da
import joblib
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

import course
from course import bench, clusters, era5, ml

warnings.filterwarnings("ignore", message=".*Sending large graph.*")
warnings.filterwarnings("ignore", message="The total space of parameters")
ml.quiet_released_run_spec_warnings()   # a harmless scheduler warning about re-used keys (dask/dask#9888)
files = era5.files()
with xr.open_mfdataset(files, **era5.OPEN, data_vars="minimal", coords="minimal", compat="override") as found:
    era5.require(found, ["t2m", "sst", "u10", "v10", "tp", "lsm", "z"], "episode 10 (its features and rain target)")
N = course.usable_cores()
N_WORKERS = min(2, N)          # the course rule: at most two workers at the default size
RAIN_MM = 0.1                  # "it rains" = more than 0.1 mm in the time step (a common wet-day threshold)
print(f"{len(files)} files ({course.size()} size), {N} usable cores")
print(course.hardware())
era5.report()  # own files only (COURSE_ERA5): what they are and what normalising did

# %% [markdown]
# ## 1. The task, its features, and a split in time *(core)*
#
# Each row of our table is one grid point at one time step. The **features** describe the local state
# now: 2 m temperature, sea surface temperature (over land the air temperature instead of a missing
# value), the two wind components and the wind speed, the land-sea mask, the orography, latitude,
# season, the hour in UTC and the *local solar* hour (as sine and cosine, so December sits next to
# January and 23:00 next to midnight), how much it rained in this step and whether that was above the
# threshold. The **target** is whether it rains more than 0.1 mm in the *next* time step.
#
# The function below builds both *lazily* from an `xarray.Dataset`: nothing is read until a result is
# asked for. It is the same function for one month in memory and for three years on disk.

# %%
#| label: features-code
FEATURES = ["t2m", "sst", "u10", "v10", "wind", "lsm", "z", "sin_lat", "cos_lat", "sin_doy", "cos_doy",
            "sin_hour", "cos_hour", "sin_solar", "cos_solar", "rain_now", "wet_now"]
RAIN_NOW = ["rain_now", "wet_now"]                  # the "rain now" features (the ablation drops them)


def features(ds):
    """Rows = (time step, grid point). X: the state now; y: rain above RAIN_MM one step later."""
    now = ds.isel(time=slice(0, -1))
    shape = now.t2m.shape
    chunks = now.t2m.chunks or tuple((n,) for n in shape)

    def column(a):  # any array that broadcasts to (time, lat, lon) -> one lazy column
        a = da.asarray(a, dtype="f4")
        a = a.rechunk(tuple(c if n > 1 else (1,) for c, n in zip(chunks, a.shape)))
        return da.broadcast_to(a, shape, chunks=chunks).reshape(-1)

    doy = 2 * np.pi * now.time.dt.dayofyear.values[:, None, None] / 365.25
    utc = now.time.dt.hour.values[:, None, None]
    solar = 2 * np.pi * (utc + now.longitude.values[None, None, :] / 15) / 24    # local solar time
    hour = 2 * np.pi * utc / 24
    lat = np.radians(now.latitude.values)[None, :, None]
    cols = {
        "t2m": now.t2m.data, "sst": now.sst.fillna(now.t2m).data, "u10": now.u10.data, "v10": now.v10.data,
        "wind": np.hypot(now.u10, now.v10).data, "lsm": now.lsm.data[None], "z": now.z.data[None],
        "sin_lat": np.sin(lat), "cos_lat": np.cos(lat), "sin_doy": np.sin(doy), "cos_doy": np.cos(doy),
        "sin_hour": np.sin(hour), "cos_hour": np.cos(hour), "sin_solar": np.sin(solar),
        "cos_solar": np.cos(solar), "rain_now": np.log1p(1000 * now.tp.data), "wet_now": 1000 * now.tp.data > RAIN_MM,
    }
    X = da.stack([column(cols[name]) for name in FEATURES], axis=1).rechunk({1: -1})
    rain_next = ds.tp.isel(time=slice(1, None)).data * 1000 > RAIN_MM
    y = column(rain_next).astype("i1").rechunk((X.chunks[0],))
    return X, y


def open_dataset(files, steps_per_block=None):  # era5.chunks: own CDS files name time valid_time
    return xr.open_mfdataset(files, **era5.OPEN, chunks=era5.chunks({"time": steps_per_block or -1}),
                             data_vars="minimal", coords="minimal", compat="override")


def month_slices(ds):
    """One slice along time per calendar month, in order (files may hold a month, a year, or a stream)."""
    month = ds.time.dt.year.values * 12 + ds.time.dt.month.values
    starts = np.flatnonzero(np.r_[True, month[1:] != month[:-1]])
    return [slice(int(a), int(b)) for a, b in zip(starts, [*starts[1:], month.size])]


# %% [markdown]
# **Why split in time, never at random.** Weather is *autocorrelated*: the rain at a grid point now is
# much like the rain there twelve hours ago, and like the rain at the neighbouring points. A random
# split of the rows puts, for almost every test row, a training row from the same time step one grid
# point away, and one from the same point one step earlier: near-duplicates. The score then measures
# how well the model remembers, not how well it forecasts. So every split in this lab is in time:
# train on an earlier period, test on a later one, with a **gap of at least a day** between them, so
# that the weather systems of the last training days have gone. Space needs nothing more here: a test
# period covers every grid point, and no grid point of it was seen at any time of that period.
#
# **Skill, not accuracy.** Rain is the exception at most places, and it persists, so two trivial
# forecasts are hard to beat: *persistence* (rain next if it rains now) and *climatology* (the wet
# frequency at this grid point and hour, from the training period). We score the *probability* of
# rain with the **Brier score**, the mean of (p − outcome)², and report the **Brier skill score**
# BSS = 1 − BS / BS(reference): 0 is no better than the reference, 1 is perfect, negative is worse.
# The **ROC AUC** says how well the probabilities rank wet steps above dry ones (0.5 = no better than
# chance). Accuracy (p > 0.5 counts as "rain") stays only as a column: it cannot tell a forecast that
# is almost right from one that is sure and wrong. The sums these scores need are additive over
# blocks, so the same function scores a month in memory and years on a cluster, lazily:

# %%
#| label: skill-code
NBINS = 200                        # the ROC curve from counts of p in 200 bins: exact for 0/1 forecasts


def _bin_counts(p, y):
    """One block: how many wet and how many dry rows fall in each bin of p."""
    i = np.minimum((p * NBINS).astype(int), NBINS - 1)
    return np.stack([np.bincount(i, weights=y, minlength=NBINS), np.bincount(i, weights=1 - y, minlength=NBINS)])[None]


def skill_parts(p, y):
    """Lazy sums for the scores of forecast p (probability of rain) against outcomes y (0/1)."""
    p, y = da.asarray(p).astype("f4"), da.asarray(y).astype("f4").rechunk(da.asarray(p).chunks)
    counts = da.map_blocks(_bin_counts, p, y, new_axis=[1, 2], dtype="f8",
                           chunks=((1,) * p.numblocks[0], (2,), (NBINS,))).sum(axis=0)
    return {"n": y.size, "sq_error": ((p - y) ** 2).sum(), "right": ((p > 0.5) == (y > 0.5)).sum(),
            "wet": counts[0], "dry": counts[1]}


def skill(parts, references=()):
    """Brier score, BSS against each reference (computed parts), ROC AUC, accuracy."""
    bs = float(parts["sq_error"]) / parts["n"]
    hit = np.concatenate([[0], np.cumsum(parts["wet"][::-1]) / parts["wet"].sum()])   # p above each threshold
    false = np.concatenate([[0], np.cumsum(parts["dry"][::-1]) / parts["dry"].sum()])
    out = {"Brier": bs}
    for name, ref in references:
        out[f"BSS vs {name}"] = 1 - bs / (float(ref["sq_error"]) / ref["n"])
    out["ROC AUC"] = float(np.trapezoid(hit, false))
    out["accuracy"] = float(parts["right"]) / parts["n"]
    return out


# %% [markdown]
# ## 2. scikit-learn in ten minutes, on one month *(core)*
#
# Every scikit-learn model is an **estimator**: you create it with its settings, `fit(X, y)` learns
# from data, `predict_proba(X)` gives the probability of each class for new rows. A **pipeline** chains
# steps, here a scaler (every feature to mean 0, standard deviation 1) and a logistic regression, so
# that the scaling learnt on the training data is applied, unchanged, to the test data.
#
# One month fits in memory easily. We train on its first 70 % of time steps, skip a day, and test on
# the rest. To keep the demonstration quick we fit on every fourth row of the training period (a thinned
# sample over every time step, not a split).

# %%
#| label: sklearn-basics
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

everything = open_dataset(files)                 # lazy: headers and coordinates only
months = month_slices(everything)
month = everything.isel(time=months[0])          # the first month
steps_per_day = int(np.timedelta64(1, "D") / (month.time.values[1] - month.time.values[0]))
n_early = int(0.7 * month.time.size)
early, late = month.isel(time=slice(0, n_early)), month.isel(time=slice(n_early + steps_per_day, None))
month_gap = late.time.values[0] - early.time.values[-1]   # last training target -> first test row
(X_tr, y_tr), (X_te, y_te) = dask.compute(features(early), features(late), scheduler="threads")

model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
t0 = time.perf_counter()
model.fit(X_tr[::4], y_tr[::4])
fit_s = time.perf_counter() - t0
wet_now = X_te[:, FEATURES.index("wet_now")]
(dry_parts, persist_parts, model_parts), = dask.compute(
    [skill_parts(np.zeros(len(y_te)), y_te), skill_parts(wet_now, y_te),
     skill_parts(model.predict_proba(X_te)[:, 1], y_te)], scheduler="threads")
refs = [("persistence", persist_parts)]
month_scores = {"always dry": skill(dry_parts, refs), "persistence": skill(persist_parts, refs),
                "logistic regression": skill(model_parts, refs)}
print(f"one month: train {early.time.size - 1} steps, gap {month_gap / np.timedelta64(1, 'h'):.0f} h, "
      f"test {late.time.size - 1} steps; fit on {len(y_tr[::4]):,} rows in {fit_s:.2f} s")
course.table([{"model (one month)": k, **{c: f"{v:.3f}" for c, v in s.items()}} for k, s in month_scores.items()])

# %% [markdown]
# Read the columns from right to left. By accuracy the model barely separates from persistence. The
# Brier score tells them apart: persistence says 0 or 1 and is sometimes sure and wrong, which the
# squared error punishes, while the model says "70 %" where rain is likely to go on and "10 %" where
# it is not. Its ROC AUC says how well its probabilities rank the wet steps above the dry ones.
# `predict` gives the class, `predict_proba` the probability:

# %%
#| label: predict
print("P(rain):  ", model.predict_proba(X_te[:8])[:, 1].round(2))
print("observed: ", y_te[:8])

# %% [markdown]
# ### Exercise 1: The leak, measured (10 min)
# Split the one-month rows of section 2 *at random*
# (`sklearn.model_selection.train_test_split` on `X_tr` and `y_tr`, `random_state=0`), fit the same
# pipeline, and compare its Brier skill score against persistence with the split in time. Why is the
# random split's score not to be trusted?
#
# <details><summary>Solution</summary>
#
# ```python
# from sklearn.model_selection import train_test_split
# Xa, Xb, ya, yb = train_test_split(X_tr[::4], y_tr[::4], test_size=0.25, random_state=0)
# m = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(Xa, ya)
# random_parts, random_persist = dask.compute(skill_parts(m.predict_proba(Xb)[:, 1], yb),
#                                             skill_parts(Xb[:, FEATURES.index("wet_now")], yb))
# print(skill(random_parts, [("persistence", random_persist)]))
# ```
# The test rows of a random split sit between training rows in time and space, so the model is tested
# on near-copies of what it learnt from, in the same weather. The number may even look similar here, with
# a model this simple; with a flexible model (trees) the random split flatters it much more. Only the
# split in time answers the forecaster's question: how good is it next month?
# </details>

# %% [markdown]
# ### Exercise 2: Heavy rain (10 min)
# Predict more than 1 mm in the next step on the one-month data.
# Change `RAIN_MM`, rebuild `X_tr, y_tr, X_te, y_te` (section 2), and compare the accuracy and the BSS of
# "always dry" and of the model. Which score tells you something?
#
# <details><summary>Solution</summary>
#
# Heavy rain is rare, so "always dry" is right most of the time and every model's accuracy looks high.
# The Brier skill score against persistence (or climatology) is still informative, and the ROC AUC
# says whether the model ranks the heavy-rain steps first. Set `RAIN_MM = 0.1` again afterwards.
# </details>

# %% [markdown]
# ## 3. Compute-bound: many fits on data that fit *(core)*
#
# Choosing a model's settings (its *hyper-parameters*) means fitting it many times: a grid search tries
# every combination, each with cross-validation. The data fit in memory; the *work* is the problem.
# Each fit is independent, so this is embarrassingly parallel, and scikit-learn runs the fits through
# **joblib**. `joblib.parallel_config` chooses where they run: one core, local worker processes
# (joblib's `loky` backend, `n_jobs` = the usable cores), or a Dask cluster (`backend="dask"`), which on
# one machine is the same idea and on many machines is the only one of the three that scales out.
#
# Cross-validation must respect time too: `TimeSeriesSplit` trains on earlier rows and validates on
# later ones, with `gap` rows (a day) in between. We search a random forest on a sample of grid points
# (every 80th, at every time step of the training weeks), scored by the Brier score.

# %%
#| label: grid-search
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit

points = X_tr.shape[0] // (early.time.size - 1)
every = 80                                            # every 80th grid point, at every time step
Xg = X_tr.reshape(-1, points, len(FEATURES))[:, ::every].reshape(-1, len(FEATURES))
yg = y_tr.reshape(-1, points)[:, ::every].ravel()
cv = TimeSeriesSplit(n_splits=3, gap=steps_per_day * len(range(0, points, every)))   # a day of rows
grid = {"max_depth": [6, 12], "max_features": [0.3, 0.6]}
forest = RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=1)


def search(**config):        # joblib's configuration is per thread: set it inside the function
    with joblib.parallel_config(**config):
        return GridSearchCV(forest, grid, cv=cv, scoring="neg_brier_score").fit(Xg, yg)


runs = {}
for label, config in [("one core", {"n_jobs": 1}), (f"loky, n_jobs={N}", {"backend": "loky", "n_jobs": N})]:
    t0 = time.perf_counter()
    runs[label] = (search(**config), time.perf_counter() - t0, 1 if config["n_jobs"] == 1 else N)

client = clusters.client(n_workers=N_WORKERS, threads_per_worker=1)
print(f"dashboard: {client.dashboard_link}")
idle_rss = ml.idle_worker_bytes(client)     # measured here, used in section 4 to size the memory limit
t0 = time.perf_counter()     # joblib waits for Dask by itself: ml.call_with_deadline gives it a deadline
dask_search = ml.call_with_deadline(client, lambda: search(backend="dask", wait_for_workers_timeout=60),
                                    "the grid search on the cluster")
runs[f"Dask, {N_WORKERS} workers"] = (dask_search, time.perf_counter() - t0, N_WORKERS)
serial_s = runs["one core"][1]
n_fits = cv.get_n_splits() * len(grid["max_depth"]) * len(grid["max_features"]) + 1
print(f"{n_fits} fits on {len(yg):,} rows; best {dask_search.best_params_}")
print(f"{course.hardware()}\n{bench.load()}")
course.table([{"joblib backend": k, "processes": p, "time": f"{s:.1f} s", "speed-up": f"{serial_s / s:.2f}"}
              for k, (_, s, p) in runs.items()])

# %% [markdown]
# The best settings are the same in every run (the check cell tests it); only the time differs. On one
# machine, loky and Dask use the same cores, so neither can beat the other by much: the speed-up is at
# most the number of processes, less when the machine is busy or the fits are short compared with
# shipping the data. Dask's advantage is elsewhere: the same line uses every worker of a cluster of
# many machines. joblib submits the fits and waits for them itself, so the lab's usual deadline cannot
# reach inside; `ml.call_with_deadline` runs the search in a thread and cancels its tasks on the cluster
# if it takes longer than the deadline.
#
# **When the data fit but the fitting is slow, parallelise the fits.** When the data do not fit, no
# amount of parallel fitting helps: the model has to see the data in pieces.

# %% [markdown]
# ## 4. Data-bound: training in pieces, memory measured *(core)*
#
# Now every file, opened lazily in **blocks** of a few time steps. The block size comes from a target
# size for one block of features (tens of MiB, as in episode 04), not from this machine. The split is
# by months: the first three quarters of the months train, the rest test, and the test period starts a
# day after the first test file begins.

# %%
#| label: lazy-features
BLOCK_BYTES = 32 * 2**20                          # one block of features: tens of MiB, as in episode 04
points = everything.latitude.size * everything.longitude.size
steps_per_block = max(1, round(BLOCK_BYTES / (points * len(FEATURES) * 4)))
n_train_months = min(len(months) - 1, max(1, round(0.75 * len(months))))
in_blocks = open_dataset(files, steps_per_block)   # blocks within each file
ds_train = in_blocks.isel(time=slice(0, months[n_train_months].start))
ds_test = in_blocks.isel(time=slice(months[n_train_months].start + steps_per_day, None))
gap = ds_test.time.values[0] - ds_train.time.values[-1]       # last training target -> first test row
X_train, y_train = features(ds_train)
X_test, y_test = features(ds_test)
period = lambda d: f"{str(d.time.values[0])[:10]} to {str(d.time.values[-1])[:10]}"
print(f"train {period(ds_train)}: {X_train.shape[0]:,} rows × {X_train.shape[1]} = {X_train.nbytes / 2**30:.2f} GiB "
      f"(float32), {X_train.numblocks[0]} blocks of {steps_per_block} steps")
print(f"gap {gap / np.timedelta64(1, 'h'):.0f} h; test {period(ds_test)}: {X_test.shape[0]:,} rows")

# %%
X_train  # the lazy array itself (its own cell: the slides show only the lines above)

# %% [markdown]
# **How much memory may a worker have?** Enough for what it holds when idle plus a few blocks in
# flight, and no more. But what does *one block* cost? Its features are tens of MiB of float32, and
# scikit-learn keeps float32 through the scaler and `SGDClassifier`, but building the features makes
# temporary arrays (decoded variables, the stacked columns), and `partial_fit` needs its own room.
# Rather than guess, we **measure** it: `ml.peak_on_worker` runs one block's whole pipeline (read,
# features, scaling, `partial_fit`) as a single task on a worker and reads the worker's peak memory
# above its idle level from the operating system.
#
# Then the limit. Each training call below hands the model `BLOCKS_PER_CALL` blocks; in the worst case
# one worker holds all of them while it builds one more, so a worker needs room for
# `k = BLOCKS_PER_CALL + 1` blocks above idle. Dask starts spilling a worker's data to disk at 70 % of its
# limit and pauses it at 80 %, so the limit is that room divided by the spill fraction (read from Dask's
# configuration): what we expect a worker to use sits at 70 %, and the margin up to 80 % is for what we
# did not foresee.

# %%
#| label: memory-budget
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier

sgd = SGDClassifier(loss="log_loss", alpha=1e-5, average=True, random_state=0)


def one_block(Xb, yb):
    """All that a worker does to one block: read it, build its features, scale them, learn from them."""
    Xb, yb = dask.compute(Xb, yb, scheduler="sync")
    clone(sgd).partial_fit(StandardScaler().fit_transform(Xb), yb, classes=[0, 1])


block_cost = max(ml.peak_on_worker(client, one_block, X_train.blocks[i], y_train.blocks[i])
                 for i in (0, X_train.numblocks[0] // 2))     # two blocks: the first, one mid-period
block_cost = max(block_cost, BLOCK_BYTES)   # a tiny grid's blocks: budget the target block size at least
BLOCKS_PER_CALL = N_WORKERS                          # blocks per training call: one per worker
k = BLOCKS_PER_CALL + 1                              # the call's blocks + the one being built
spill = dask.config.get("distributed.worker.memory.spill")    # 0.7 unless configured
memory_limit = int((max(idle_rss) + k * block_cost) / spill)
budget = memory_limit - max(idle_rss)                # what a worker may use above idle
client.close()                                       # the next cluster has this limit
print(f"one block: {max(X_train.chunks[0]) * len(FEATURES) * 4 / 2**20:.0f} MiB of features, "
      f"measured peak {block_cost / 2**20:.0f} MiB")
print(f"limit = (idle {max(idle_rss) / 2**20:.0f} MiB + {k} × {block_cost / 2**20:.0f} MiB) / {spill}"
      f" = {memory_limit / 2**20:,.0f} MiB per worker, {N_WORKERS} workers")

# %% [markdown]
# **Is this data set larger than memory?** Compare the training features with what the workers may
# hold together. The sentence below is chosen by the measurement, at whatever size the lab runs:

# %%
#| label: headline
combined = N_WORKERS * memory_limit
ratio = X_train.nbytes / combined
print(f"training features {X_train.nbytes / 2**20:,.0f} MiB; workers' combined limit "
      f"{N_WORKERS} × {memory_limit / 2**20:,.0f} = {combined / 2**20:,.0f} MiB (ratio {ratio:.1f})")
if ratio >= 1:
    print(textwrap.fill(f"The training features are {ratio:.1f} times what the workers may hold together: "
                        f"they cannot be held at once, and training block by block is the only way "
                        f"through them on this cluster.", 100))
else:
    print(textwrap.fill(f"At this size ({course.size()}) the training features FIT in the workers' combined "
                        f"limit ({ratio:.0%} of it): nothing here needs out-of-core training. What this run "
                        f"shows is the method, and that the peak stays flat while the rows grow 4×; "
                        f"COURSE_SIZE=workshop is the run whose training data are at least 4× the limits.", 100))

# %% [markdown]
# `dask_ml` mirrors scikit-learn's tools for Dask arrays. Its `StandardScaler` learns the means and
# standard deviations in one pass over the data. `SGDClassifier` (a logistic regression trained by
# stochastic gradient descent) has a `partial_fit` method that updates the model with one batch of rows
# (`average=True` keeps the average of the weights over the pass, much steadier after a single pass).
# `Incremental` wraps it and calls `partial_fit` on one block after another.
#
# `Incremental.fit(X, y)` would walk through all blocks in one computation. But the blocks can be read
# faster than the model, a chain, can eat them, and Dask may read ahead and hold blocks waiting their
# turn. So we hand `Incremental.partial_fit` `BLOCKS_PER_CALL` blocks at a time (one per worker), in a
# shuffled order: the workers read those blocks in parallel, the model learns from them, and only then
# are the next ones read. That bounds the read-ahead, and so the memory, whatever the size of the data.
#
# **The proof is a measurement.** We train three times, on ¼, ½ and all of the training blocks, and read
# each worker's peak memory from the operating system, with what Dask spilled to disk. Then, for the
# contrast, one `Incremental.fit` over every block in a single call, under a deadline.
#
# dask-ml starts these computations itself (`dask.compute` inside `fit`). So that they too have a deadline
# and say what went wrong instead of hanging, each step runs inside `steps(...)` (an `ml.Steps`): every
# computation in the block goes through the same watch as `clusters.compute`, and the peak memory of
# every worker process is sampled from the operating system while it runs.

# %%
#| label: incremental-train
from dask_ml.preprocessing import StandardScaler as DaskScaler
from dask_ml.wrappers import Incremental


def disk_writes(dask_worker):     # bytes this worker has spilled to disk so far (its own counters)
    return sum(v for key, v in dask_worker.digests_total.items()
               if isinstance(key, tuple) and "disk-write" in key and "bytes" in key)


client = clusters.client(n_workers=N_WORKERS, threads_per_worker=1, memory_limit=memory_limit, local_only=True)
steps = ml.Steps(client)      # each step: a deadline, its time, every worker's peak memory
with steps("scaler: one pass"):
    scaler = DaskScaler().fit(X_train)
X_scaled = scaler.transform(X_train)
order = np.random.default_rng(0).permutation(X_scaled.numblocks[0])   # blocks in a shuffled order
idle_now = ml.idle_worker_bytes(client)
runs_memory = []
for share in (4, 2, 1):                              # ¼, ½ and all of the training blocks
    blocks = order[:max(1, len(order) // share)]
    incremental = Incremental(clone(sgd), random_state=0)
    spilled_before = client.run(disk_writes)
    what = f"training on {'all' if share == 1 else f'1/{share}'} of the blocks"
    with steps(what):
        t0 = time.perf_counter()
        for i in range(0, len(blocks), BLOCKS_PER_CALL):  # a few blocks per call: read in parallel, fit in turn
            some = blocks[i:i + BLOCKS_PER_CALL]
            incremental.partial_fit(X_scaled.blocks[some], y_train.blocks[some], classes=[0, 1])
        seconds = time.perf_counter() - t0
    spilled = sum(client.run(disk_writes).values()) - sum(spilled_before.values())
    runs_memory.append({"run": what, "rows": sum(X_train.chunks[0][b] for b in blocks), "spilled": spilled,
                        "peaks": [p for _, p in sorted(steps.peak[what].items())], "seconds": seconds})
n_train = runs_memory[-1]["rows"]

spilled_before = client.run(disk_writes)
one_fit = Incremental(clone(sgd), random_state=0)
try:                                                 # the contrast: every block in one call
    with steps("one Incremental.fit over all blocks"):
        t0 = time.perf_counter()
        one_fit.fit(X_scaled, y_train, classes=[0, 1])
        one_fit_outcome = f"finished in {time.perf_counter() - t0:.0f} s"
except clusters.ClusterTrouble as err:
    one_fit_outcome = f"stopped: {textwrap.shorten(str(err), 80, placeholder=' …')}"
one_fit_peaks = [p for _, p in sorted(steps.peak.get("one Incremental.fit over all blocks", {}).items())]
one_fit_spilled = sum(client.run(disk_writes).values()) - sum(spilled_before.values())
print(f"one Incremental.fit over all blocks: {one_fit_outcome}")

# %%
#| label: memory-vs-rows
mib = lambda b: f"{b / 2**20:,.0f}"
rows = [{"training": r["run"].replace("training on ", ""), "rows": f"{r['rows']:,}",
         "features (MiB)": mib(r["rows"] * len(FEATURES) * 4),
         "each worker's peak (MiB, OS)": " / ".join(mib(p) for p in r["peaks"]),
         "of its limit": f"{max(r['peaks']) / memory_limit:.0%}", "spilled (MiB)": mib(r["spilled"])}
        for r in runs_memory]
rows.append({"training": "one fit() call, all", "rows": f"{n_train:,}", "features (MiB)": mib(X_train.nbytes),
             "each worker's peak (MiB, OS)": " / ".join(mib(p) for p in one_fit_peaks) or "n/a",
             "of its limit": f"{max(one_fit_peaks, default=0) / memory_limit:.0%}",
             "spilled (MiB)": mib(one_fit_spilled)})
growth = max(runs_memory[-1]["peaks"]) - max(runs_memory[0]["peaks"])
FLAT_MARGIN = block_cost                             # "flat": within the measured cost of one block
print(f"limit {mib(memory_limit)} MiB per worker, idle {' / '.join(mib(b) for b in idle_now)} MiB")
print(f"{course.hardware()}\n{bench.load()}")
course.table(rows)
print(textwrap.fill(
    f"Rows ×{n_train / runs_memory[0]['rows']:.0f}: the highest worker peak moved by {growth / 2**20:+,.0f} MiB, "
    + (f"within the margin of one block ({mib(FLAT_MARGIN)} MiB): flat." if abs(growth) <= FLAT_MARGIN
       else f"more than one block ({mib(FLAT_MARGIN)} MiB): NOT flat; look at the blocks per call."), 100))

# %%
#| label: fig-memory-vs-rows
#| fig-cap: "Each worker's peak memory (from the operating system) while the model trains on a quarter, a half and all of the training blocks, against the number of training rows; the dashed line is the worker's memory limit."
#| fig-alt: "Scatter plot of peak worker memory in MiB against training rows. For each worker the three points at a quarter, half and all of the rows lie on a nearly horizontal line, far below the dashed memory-limit line; the training features themselves grow fourfold."
fig, ax = plt.subplots(figsize=(9, 3.8))
for w in range(N_WORKERS):
    ax.plot([r["rows"] for r in runs_memory], [r["peaks"][w] / 2**20 for r in runs_memory], "o-",
            label=f"worker {w + 1}: peak")
ax.plot([r["rows"] for r in runs_memory], [r["rows"] * len(FEATURES) * 4 / 2**20 for r in runs_memory], "s:",
        color="0.5", label="training features")
ax.axhline(memory_limit / 2**20, ls="--", color="k", label="memory limit per worker")
ax.set(xlabel="training rows", ylabel="MiB", ylim=(0, None))
ax.legend(loc="upper left", fontsize=9)
bench.stamp(fig)
plt.show()

# %% [markdown]
# Read the table: the rows grow fourfold, each worker's peak does not, and nothing was spilled. That is
# what out of core means: memory is set by the block size and the blocks per call, not by the data.
# The single `fit` call is the contrast: it hands Dask the whole chain at once, and how far Dask reads
# ahead then depends on its scheduler, not on us; its row in the table says what it did here.

# %% [markdown]
# ### Exercise 3: Block size and memory (10 min)
# Rebuild the features with blocks four times larger
# (`BLOCK_BYTES = 128 * 2**20`), measure one block again (`memory-budget` cell), and run the training
# cell. How do the block's cost, the limit and the peaks move?
#
# <details><summary>Solution</summary>
#
# The measured cost of a block grows roughly with its size, and so does the limit, because we sized it
# from that cost: `(idle + k × block) / 0.7`. The peaks follow, and stay flat against the rows. Larger
# blocks mean fewer tasks and less overhead per row; smaller blocks mean less memory. Keep blocks at tens
# to a few hundred MiB.
# </details>

# %% [markdown]
# ### Exercise 4: Where is the time? (5 min)
# Open the dashboard link during training. Which tasks take
# the time: reading NetCDF, building features, or `partial_fit`? Why can only one worker train at a time?
#
# <details><summary>Solution</summary>
#
# `partial_fit` needs the model as updated by the previous block, so training is a chain: one block
# after another, one worker busy with the model while the others read and prepare the next blocks.
# Reading and decoding run in parallel; the fitting itself does not. That is the price of out-of-core
# SGD; a grid search (section 3) or xgboost's tree building parallelise differently.
# </details>

# %% [markdown]
# ## 5. Without Dask: one machine's memory, and a plain loop *(core)*
#
# Is Dask needed at all? Two fair rivals, on the same training period:
#
# - **scikit-learn in memory**, with a learning curve: the same scaler and model (`fit`, several
#   passes), trained on more and more rows, up to what fits comfortably in this process
#   (`IN_MEMORY_BYTES` of features; all of the training rows when they fit). The rows are whole blocks
#   spread evenly over the training period, so every season is in every sample.
# - **a plain loop over the files**, no cluster: open one month, build its rows in this process,
#   `partial_fit`, next month (in a shuffled order, as `Incremental` took its blocks). The same
#   algorithm as `Incremental`, with one month in memory at a time.

# %%
#| label: in-memory
IN_MEMORY_BYTES = 2**30                              # features a laptop holds comfortably: 1 GiB
every_block = int(np.ceil(X_train.nbytes / IN_MEMORY_BYTES))
picked = np.arange(0, X_train.numblocks[0], every_block)
X_mem, y_mem = dask.compute(X_train.blocks[picked], y_train.blocks[picked], scheduler="threads")  # no cluster
in_memory_sgd = clone(sgd).set_params(max_iter=5, tol=None)   # 5 passes over the rows it holds
curve = {}
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)       # 5 passes are what we asked for
    for share in (64, 16, 4, 1):                              # every 64th row of the sample ... all of it
        curve[len(y_mem[::share])] = make_pipeline(StandardScaler(), clone(in_memory_sgd)).fit(
            X_mem[::share], y_mem[::share])
    keep = [i for i, name in enumerate(FEATURES) if name not in RAIN_NOW]
    ablation = make_pipeline(StandardScaler(), clone(in_memory_sgd)).fit(X_mem[:, keep], y_mem)
in_memory = curve[len(y_mem)]

plain = clone(sgd)                                   # the plain loop: no cluster, one month at a time
plain_scaler = StandardScaler()
t0 = time.perf_counter()
for m in np.random.default_rng(0).permutation(n_train_months):   # months in a shuffled order, like the blocks
    Xm, ym = dask.compute(*features(ds_train.isel(time=months[m])), scheduler="sync")  # in this process
    plain.partial_fit(plain_scaler.partial_fit(Xm).transform(Xm), ym, classes=[0, 1])
plain_s = time.perf_counter() - t0
print(f"in memory: {len(y_mem):,} rows ({X_mem.nbytes / 2**20:,.0f} MiB, "
      f"{len(y_mem) / n_train:.0%} of the training rows); plain loop over {n_train_months} months in {plain_s:.0f} s")
del X_mem, Xm
gc.collect()

# %% [markdown]
# The plain loop scales each month with the statistics seen so far (`partial_fit` of the scaler), a
# small difference from the Dask model, which learnt its scaling in a first pass over everything.
#
# ## 6. Skill on the held-out period *(core)*
#
# **Boosted trees on a cluster: `xgboost.dask`**, the maintained route for gradient boosting with Dask.
# Install the CPU-only wheel, `pip install xgboost-cpu` (conda-forge: `py-xgboost-cpu`); the default
# `xgboost` wheel on Linux pulls in NVIDIA's libraries. It loads its training data into the workers'
# memory, so the training set must fit the cluster: we give it one whole block per worker, spread over
# the training period, which the budget has room for.
# `xgboost.dask.train` waits by itself, so `ml.call_with_deadline` gives it its deadline.

# %%
#| label: xgboost
import xgboost
import xgboost.dask

xgb_blocks = np.linspace(0, X_train.numblocks[0] - 1, min(X_train.numblocks[0], N_WORKERS)).round().astype(int)
params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6, "nthread": 1}


def train_trees():
    dtrain = xgboost.dask.DaskDMatrix(client, X_train.blocks[xgb_blocks], y_train.blocks[xgb_blocks])
    return xgboost.dask.train(client, params, dtrain, num_boost_round=50)["booster"]


with steps("xgboost.dask: a few blocks"):
    t0 = time.perf_counter()
    booster = ml.call_with_deadline(client, train_trees, "xgboost.dask training")
    xgb_s = time.perf_counter() - t0
xgb_rows = sum(X_train.chunks[0][b] for b in xgb_blocks)
print(f"xgboost {xgboost.__version__}: {xgb_rows:,} rows, trained in {xgb_s:.1f} s")

# %% [markdown]
# Now every model, and the three baselines, on **every row of the test period**, in one lazy pass:
# `ParallelPostFit` wraps a fitted scikit-learn estimator so that `predict_proba` returns a lazy Dask
# array, computed block by block on the workers. The climatology is the wet frequency at each grid point
# and hour of the day in the training period. The same pass maps the mean predicted probability next
# to the observed frequency of rain, for the test period only.

# %%
#| label: score-pass
from dask_ml.wrappers import ParallelPostFit
from sklearn.preprocessing import StandardScaler as SkScaler

fitted_scaler = SkScaler()
for attr in ("mean_", "scale_", "var_", "n_samples_seen_", "n_features_in_"):
    setattr(fitted_scaler, attr, getattr(scaler, attr))
lazy_p = lambda estimator, X=X_test: ParallelPostFit(estimator).predict_proba(X)[:, 1]

wet_next = ds_train.tp.isel(time=slice(1, None)) * 1000 > RAIN_MM
with steps("climatology: one pass"):
    climate, = dask.compute(wet_next.groupby("time.hour").mean())
grid_now = ds_test.t2m.isel(time=slice(0, -1))                 # the test rows' times, as the features have them
hour_of = np.searchsorted(climate.hour.values, ds_test.time.dt.hour.values[1:])   # the target's hour
hours = da.from_array(hour_of, chunks=(grid_now.chunks[0],))
p_climate = da.blockwise(lambda h, c: c[h], "tij", hours, "t", da.from_array(climate.values.astype("f4")), "hij",
                         dtype="f4", concatenate=True).reshape(-1).rechunk((X_test.chunks[0],))

forecasts = {
    "always dry": ("none", da.zeros_like(y_test, dtype="f4")),
    "persistence (rain now)": ("none", X_test[:, FEATURES.index("wet_now")]),
    "climatology (point, hour)": ("training period", p_climate),
    "dask-ml Incremental SGD": (f"{n_train:,} rows, in blocks",
                                lazy_p(make_pipeline(fitted_scaler, incremental.estimator_))),
    "plain partial_fit loop": (f"{n_train:,} rows, month by month", lazy_p(make_pipeline(plain_scaler, plain))),
    "scikit-learn in memory": (f"{len(y_mem):,} rows", lazy_p(in_memory)),
    "in memory, without rain now": (f"{len(y_mem):,} rows", lazy_p(ablation, X_test[:, keep])),
    "xgboost.dask trees": (f"{xgb_rows:,} rows", X_test.map_blocks(
        lambda b, booster: booster.inplace_predict(b).astype("f4"), booster=booster, drop_axis=1, dtype="f4")),
}
forecasts |= {f"in memory, {n:,} rows": (f"{n:,} rows", lazy_p(m)) for n, m in curve.items() if m is not in_memory}
p_map = xr.DataArray(forecasts["dask-ml Incremental SGD"][1].reshape(grid_now.shape).rechunk(grid_now.chunks),
                     coords=grid_now.coords, dims=grid_now.dims, name="p_rain")
with steps("scores: every test row"):
    parts, predicted_freq, observed_freq = dask.compute(
        {k: skill_parts(p, y_test) for k, (_, p) in forecasts.items()}, p_map.mean("time"),
        (ds_test.tp.isel(time=slice(1, None)) * 1000 > RAIN_MM).mean("time"))
refs = [("climatology", parts["climatology (point, hour)"]), ("persistence", parts["persistence (rain now)"])]
scores = {k: skill(parts[k], refs) for k in forecasts}
with ml.deadline(client, "the maps"):                # already computed above; this only makes sure
    predicted_freq, observed_freq = predicted_freq.load(), observed_freq.load()
map_corr = float(np.corrcoef(predicted_freq.values.ravel(), observed_freq.values.ravel())[0, 1])

# %%
#| label: test-period
print(f"test period {period(ds_test)}: {int(parts['always dry']['n']):,} rows, every model on the same rows")

# %%
#| label: skill-scores
short = {"BSS vs climatology": "BSS clim.", "BSS vs persistence": "BSS pers.", "ROC AUC": "AUC", "accuracy": "acc."}
course.table([{"forecast": k, "trained on": forecasts[k][0].split(", ")[0],
               **{short[c]: f"{v:.3f}" for c, v in scores[k].items() if c != "Brier"}}
              for k in forecasts if not k.startswith("in memory, ") or "without" in k])

# %%
#| label: ablation-sentence
inc = scores["dask-ml Incremental SGD"]
full, without = scores["scikit-learn in memory"], scores["in memory, without rain now"]
trees = scores["xgboost.dask trees"]
print(textwrap.fill(
    f"Without the rain-now features, the in-memory model's BSS against persistence goes from "
    f"{full['BSS vs persistence']:.2f} to {without['BSS vs persistence']:.2f}, and against climatology from "
    f"{full['BSS vs climatology']:.2f} to {without['BSS vs climatology']:.2f}. The trees, trained on "
    f"{xgb_rows / n_train:.0%} of the rows, score {trees['BSS vs climatology']:.2f} against climatology: "
    f"{'more' if trees['BSS vs climatology'] > inc['BSS vs climatology'] else 'not more'} than the "
    f"Incremental model's {inc['BSS vs climatology']:.2f}.", 100))

# %% [markdown]
# How to read it. *Always dry* is the floor. *Persistence* and *climatology* each carry half of what
# these data hold: where it rains now, and where and when it usually rains. The models combine both,
# so their BSS is positive against each (the check cell tests it for the Incremental model). The row
# *without rain now* is the ablation: drop the two "rain now" features and the skill against
# persistence collapses, because in these data (synthetic, see the top) tomorrow's rain is mostly
# today's rain that goes on; temperature and wind carry almost none of it. The trees add what a linear
# model cannot draw (thresholds and interactions), trained on far fewer rows.

# %%
#| label: fig-learning-curve
#| fig-cap: "Brier skill score against climatology on the test period for scikit-learn trained in memory on more and more rows (line), next to the plain partial_fit loop and the dask-ml Incremental model, both trained on every training row."
#| fig-alt: "Line chart of Brier skill score against the number of training rows, on a logarithmic axis. The in-memory line rises a little and flattens; the two horizontal markers for the plain loop and Incremental sit at the right, at about the same height as the end of the line."
sizes = sorted(curve)
name_of = lambda n: "scikit-learn in memory" if curve[n] is in_memory else f"in memory, {n:,} rows"
fig, ax = plt.subplots(figsize=(9, 3.6))
ax.plot(sizes, [skill(parts[name_of(n)], refs)["BSS vs climatology"] for n in sizes], "o-", label="scikit-learn in memory")
for label, marker in [("plain partial_fit loop", "s"), ("dask-ml Incremental SGD", "D")]:
    ax.plot([n_train], [scores[label]["BSS vs climatology"]], marker, ms=9, label=label)
ax.set(xscale="log", xlabel="training rows", ylabel="BSS vs climatology")
ax.legend(loc="lower right", fontsize=9)
bench.stamp(fig)
plt.show()

# %% [markdown]
# **When is Dask needed?** The printout below compares the learning curve's ends and the plain loop
# with the Incremental model, from the numbers above. Dask earns its place when one of three things
# holds: the training data do not fit in one process and you want the reading and feature building in
# parallel; the same code must run on a cluster of many machines; or the work around the model
# (features, scores, maps over years of data) is itself the big computation, as the scoring pass was.

# %%
#| label: dask-needed
bss = lambda name: scores[name]["BSS vs climatology"]
first, last = bss(name_of(sizes[0])), bss(name_of(sizes[-1]))
print(textwrap.fill(
    f"In memory, {sizes[0]:,} rows give a BSS of {first:.3f} against climatology and {sizes[-1]:,} rows "
    f"{last:.3f} ({'a gain of' if last > first else 'a change of'} {last - first:+.3f}). The plain loop over "
    f"the files, with no cluster, scores {bss('plain partial_fit loop'):.3f} and took {plain_s:.0f} s; the "
    f"Incremental model {bss('dask-ml Incremental SGD'):.3f}. "
    + (f"At this size the training features fit in the workers' combined limit (and in "
       f"{'one process' if sizes[-1] == n_train else 'part in one process'}): Dask is not needed to train "
       f"this model here." if ratio < 1 else
       f"At this size the training features are {ratio:.1f} times the workers' combined limit: in memory "
       f"only a sample fits, and the loop or Dask must read the rest in pieces."), 100))

# %%
#| label: fig-rain-maps
#| fig-cap: "How often it rains in the next time step during the test period: observed (left) and the mean predicted probability of the incremental model (right), which never saw this period."
#| fig-alt: "Two world maps with the same viridis colour scale from 0 to 1. Both show a wet band along the equator that is wettest near the ITCZ, dry subtropical belts, and wetter storm tracks in the middle latitudes; the predicted map is smoother."
import cartopy.crs as ccrs

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), subplot_kw={"projection": ccrs.Robinson()})
for ax, field, title in zip(axes, [observed_freq, predicted_freq], ["observed", "predicted"]):
    im = field.plot(ax=ax, transform=ccrs.PlateCarree(), cmap="viridis", vmin=0, vmax=1, add_colorbar=False)
    ax.coastlines(linewidth=0.5)
    ax.set_title(title)
fig.colorbar(im, ax=axes, orientation="horizontal", shrink=0.5, pad=0.05, label="fraction of test steps with rain next")
plt.show()

# %% [markdown]
# Every step on the big cluster, with the highest peak of any worker (from the operating system)
# against its limit:

# %%
#| label: steps
print(f"{course.hardware()}; {bench.load()}")
course.table(steps.rows(memory_limit))

# %% [markdown]
# ## 7. Where the ecosystem stands *(core)*
#
# **dask-ml is in maintenance.** Version 2025.1.0 works for what this lab uses (`Incremental`,
# `ParallelPostFit`, `StandardScaler`; also `train_test_split` and the GLMs), but two of its well-known
# pieces fail with current Dask, and you should know before you build on them:
#
# - `HyperbandSearchCV` and `IncrementalSearchCV` (adaptive hyper-parameter search) stop with
#   *"Attempting to use an asynchronous Client in a synchronous context"* (dask/dask-ml#1016).
#   Workaround: `GridSearchCV` / `RandomizedSearchCV` from scikit-learn with the joblib Dask backend
#   (section 3), on a sample that fits.
# - `dask_ml.metrics.r2_score`, and so the default `score` of every dask-ml **regressor**, fails
#   (dask/dask-ml#1012). Workaround: compute R² yourself from Dask arrays, as below.

# %%
#| label: broken-pieces
from dask_ml.metrics import r2_score
from dask_ml.model_selection import HyperbandSearchCV

demo_X = da.random.default_rng(0).random((2_000, 3), chunks=(500, 3))
demo_y = demo_X @ np.array([1.0, -2.0, 0.5])
demo_class = (demo_y > 0).astype(int)
broken = {}
# The failures leave coroutines that were never awaited; their RuntimeWarnings are noise, not the lesson.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    try:
        with ml.deadline(client, "r2_score demo", timeout=120):
            r2_score(demo_y, demo_y * 0.9)
        broken["dask_ml r2_score"] = "worked (fixed upstream?)"
    except Exception as err:
        broken["dask_ml r2_score"] = f"{type(err).__name__}: {textwrap.shorten(str(err), 90, placeholder=' …')}"

    try:  # fails within a second, before any work starts (not under ml.deadline: it runs an async client)
        HyperbandSearchCV(SGDClassifier(), {"alpha": [1e-4, 1e-3]}, max_iter=3).fit(demo_X, demo_class,
                                                                                    classes=[0, 1])
        broken["HyperbandSearchCV"] = "worked (fixed upstream?)"
    except Exception as err:
        broken["HyperbandSearchCV"] = f"{type(err).__name__}: {textwrap.shorten(str(err), 90, placeholder=' …')}"


def r2(y_true, y_pred):
    """R² from Dask arrays: 1 - residual sum of squares / total sum of squares."""
    return 1 - ((y_true - y_pred) ** 2).sum() / ((y_true - y_true.mean()) ** 2).sum()


with warnings.catch_warnings():  # the failed demos above may still drop never-awaited coroutines here
    warnings.simplefilter("ignore", RuntimeWarning)
    with ml.deadline(client, "R² by hand"):
        r2_workaround, demo_y_values = dask.compute(r2(demo_y, demo_y * 0.9), demo_y)
    gc.collect()
broken["R² by hand (workaround)"] = f"{r2_workaround:.4f}"
course.table([{"piece": k, "result": v} for k, v in broken.items()])

# %%
client.close()

# %% [markdown]
# ## Key points
# - Split weather data **in time**, with a gap of at least a day: rows close in time or space are near-copies.
# - Score probabilities with the Brier skill score against persistence and climatology, plus ROC AUC;
#   accuracy alone cannot tell a good forecast from a trivial one. On synthetic data, skill measures the generator.
# - Compute-bound (many fits, data fit): `joblib.parallel_config(backend=...)`: loky on one machine, Dask on many.
# - Data-bound: `dask_ml.wrappers.Incremental` + a `partial_fit` estimator, a few blocks per call; memory
#   is set by block size, not by data size. Prove it: peak against rows, ¼ to all.
# - Say when Dask is not needed: if the data fit, scikit-learn in memory or a plain `partial_fit` loop does it.
# - dask-ml is in maintenance: avoid `HyperbandSearchCV`/`IncrementalSearchCV` (#1016) and its `r2_score`
#   (#1012). For boosted trees on a cluster use `xgboost.dask` (`xgboost-cpu`), with data that fit the cluster.

# %% [markdown]
# ## Checks
# Run by `pytest labs/10_machine_learning.py`; the slides never show this cell.

# %% tags=["checks"]
def test_every_split_is_in_time_with_a_gap():
    day = np.timedelta64(1, "D")
    assert month_gap >= day and gap >= day
    assert ds_train.time.values[-1] < ds_test.time.values[0]
    assert early.time.values[-1] < late.time.values[0]
    for train, test in cv.split(Xg):
        assert train.max() + cv.gap < test.min()


def test_month_model_beats_persistence_in_brier():
    if era5.own_data():
        return  # the skill checks are facts of the generated data with its fixed seed; on yours, read the tables
    assert month_scores["logistic regression"]["BSS vs persistence"] > 0
    assert month_scores["logistic regression"]["ROC AUC"] > month_scores["persistence"]["ROC AUC"]


def test_grid_search_same_answer_on_every_backend():
    results = [r.cv_results_["mean_test_score"] for r, _, _ in runs.values()]
    for other in results[1:]:
        np.testing.assert_allclose(results[0], other)
    assert len({str(r.best_params_) for r, _, _ in runs.values()}) == 1


def test_incremental_model_has_skill_on_the_held_out_period():
    if era5.own_data():
        return
    s = scores["dask-ml Incremental SGD"]
    assert s["BSS vs persistence"] > 0 and s["BSS vs climatology"] > 0
    assert s["ROC AUC"] > max(scores["persistence (rain now)"]["ROC AUC"], scores["climatology (point, hour)"]["ROC AUC"])


def test_rain_now_is_where_the_skill_comes_from():
    if era5.own_data():
        return
    full, without = scores["scikit-learn in memory"], scores["in memory, without rain now"]
    assert full["BSS vs persistence"] > without["BSS vs persistence"] + 0.05


def test_without_dask_also_skill():
    if era5.own_data():
        return
    for name in ("plain partial_fit loop", "scikit-learn in memory", "xgboost.dask trees"):
        assert scores[name]["BSS vs climatology"] > 0 and scores[name]["BSS vs persistence"] > 0


def test_every_training_row_seen():
    assert incremental.estimator_.t_ > n_train  # SGD counts the samples it has seen (t_ starts at 1)


def test_memory_flat_while_rows_grow_fourfold():
    if X_train.numblocks[0] >= 4:  # a set of a few blocks (small own files) cannot grow fourfold
        assert runs_memory[-1]["rows"] >= 3.5 * runs_memory[0]["rows"]
    assert abs(growth) <= FLAT_MARGIN
    assert all(max(r["peaks"]) < 0.8 * memory_limit for r in runs_memory)   # below where Dask pauses


def test_workers_stay_under_their_limit():
    assert steps.highest() < 0.95 * memory_limit  # no worker in any step came near where Dask kills it
    if course.size() != "small":  # the training data are many times what the workers may hold
        assert X_train.nbytes >= 4 * N_WORKERS * memory_limit


def test_prediction_back_on_the_grid():
    assert p_map.dims == ("time", "latitude", "longitude")
    assert float(predicted_freq.min()) >= 0 and float(predicted_freq.max()) <= 1
    assert map_corr > 0.7 or era5.own_data()  # the generated data's rain map; own files: read the maps


def test_broken_pieces_shown_and_workaround_right():
    from sklearn.metrics import r2_score as sk_r2
    np.testing.assert_allclose(r2_workaround, sk_r2(demo_y_values, 0.9 * demo_y_values), rtol=1e-9)
    assert "HyperbandSearchCV" in broken and "dask_ml r2_score" in broken


def test_auc_from_histograms_matches_scikit_learn():
    from sklearn.metrics import roc_auc_score
    p = model.predict_proba(X_te)[:, 1]
    ours = skill(dask.compute(skill_parts(p, y_te))[0])["ROC AUC"]
    assert abs(ours - roc_auc_score(y_te, p)) < 0.005


def test_clusters_closed():
    assert client.status == "closed"


course.run_checks(globals())
