# %% [markdown]
# # 10 · Machine learning with Dask: training on more data than memory
#
# **Teaching:** 40 min · **Exercises:** 35 min
#
# ## Objectives
# - Use scikit-learn's estimator interface: `fit`, `predict`, `score`, a train/test split and a pipeline.
# - Tell a *compute-bound* problem (many fits on data that fit) from a *data-bound* one (data that do not fit).
# - Parallelise a grid search over a Dask cluster with joblib, and measure the speed-up.
# - Train a model block by block on features read lazily from NetCDF, with `dask_ml`'s `Incremental`,
#   while the workers stay under a memory limit that is smaller than the data.
# - Compare the model honestly: against trivial baselines and against scikit-learn trained in memory.
# - Predict the whole dataset lazily with `ParallelPostFit` and put the answer back on a map.
# - Know which parts of the ecosystem are maintained (xgboost.dask) and which are broken (parts of dask-ml).
#
# ## Why this episode?
# A flood modeller wants a quick rain classifier: *does it rain at this grid point in the next time
# step, given the weather there now?* A year of a coarse grid fits in memory and scikit-learn does the
# job in a few lines. Three years at 1° do not, and a decade at ERA5's resolution never will. The usual
# answers are "buy a bigger machine" or "subsample and hope". This lab shows a third: let the model see
# the data in pieces, and **measure** that the workers stay under their memory limit and that the model
# is as good as one trained in memory.

# %%
import gc
import inspect
import textwrap
import time
import warnings

import dask
import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
import psutil
import xarray as xr

import course
from course import clusters, ml

warnings.filterwarnings("ignore", message=".*Sending large graph.*")
warnings.filterwarnings("ignore", message="The total space of parameters")
ml.quiet_released_run_spec_warnings()   # a harmless scheduler warning about re-used keys (dask/dask#9888)
DATA_DIR = course.dataset()
files = sorted(DATA_DIR.glob("era5_*.nc"))
N = course.usable_cores()
N_WORKERS = min(2, N)          # the course rule: at most two workers at the default size
RAIN_MM = 0.1                  # "it rains" = more than 0.1 mm in the time step (a common wet-day threshold)
print(f"{len(files)} monthly files ({course.size()} size), {N} usable cores")
print(course.hardware())

# %% [markdown]
# ## 1. The task and its features
#
# Each row of our table is one grid point at one time step. The **features** describe the local state
# now: 2 m temperature, sea surface temperature (over land we use the air temperature instead of a
# missing value), the two wind components and the wind speed, the land-sea mask, the orography,
# latitude, season and hour of day (as sine and cosine, so December sits next to January), how much
# it rained in this step and whether that was above the threshold. The **target** is whether it rains more than 0.1 mm in the *next* time step.
#
# The function below builds both *lazily* from an `xarray.Dataset`: nothing is read until a result is
# asked for. It is the same function for one month in memory and for three years on disk.

# %%
#| label: features-code
FEATURES = ["t2m", "sst", "u10", "v10", "wind", "lsm", "z", "sin_lat", "cos_lat",
            "sin_doy", "cos_doy", "sin_hour", "cos_hour", "rain_now", "wet_now"]


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
    hour = 2 * np.pi * now.time.dt.hour.values[:, None, None] / 24
    lat = np.radians(now.latitude.values)[None, :, None]
    cols = {
        "t2m": now.t2m.data, "sst": now.sst.fillna(now.t2m).data, "u10": now.u10.data, "v10": now.v10.data,
        "wind": np.hypot(now.u10, now.v10).data, "lsm": now.lsm.data[None], "z": now.z.data[None],
        "sin_lat": np.sin(lat), "cos_lat": np.cos(lat), "sin_doy": np.sin(doy), "cos_doy": np.cos(doy),
        "sin_hour": np.sin(hour), "cos_hour": np.cos(hour), "rain_now": np.log1p(1000 * now.tp.data),
        "wet_now": 1000 * now.tp.data > RAIN_MM,
    }
    X = da.stack([column(cols[name]) for name in FEATURES], axis=1).rechunk({1: -1})
    rain_next = ds.tp.isel(time=slice(1, None)).data * 1000 > RAIN_MM
    y = column(rain_next).astype("i1").rechunk((X.chunks[0],))
    return X, y


def open_dataset(files, steps_per_block=None):
    return xr.open_mfdataset(files, chunks={"time": steps_per_block or -1}, data_vars="minimal",
                             coords="minimal", compat="override")


# %% [markdown]
# ## 2. scikit-learn in ten minutes
#
# Every scikit-learn model is an **estimator**: you create it with its settings, `fit(X, y)` learns
# from data, `predict(X)` answers for new rows, and `score(X, y)` measures the answer (accuracy for a
# classifier). A **pipeline** chains steps, here a scaler (every feature to mean 0, standard deviation 1)
# and a logistic regression, so that the scaling learnt on the training data is applied, unchanged, to
# the test data. We keep a quarter of the rows back as a **test set** that the model never sees.
#
# One month fits in memory easily, so we load it as NumPy arrays and, to keep the demonstration quick,
# take a random sample of its rows.

# %%
#| label: sklearn-basics
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

with open_dataset(files[:1]) as month:
    X_month, y_month = dask.compute(*features(month), scheduler="threads")
rows = np.random.default_rng(0).choice(len(y_month), size=min(len(y_month), 200_000), replace=False)
X_tr, X_te, y_tr, y_te = train_test_split(X_month[rows], y_month[rows], test_size=0.25, random_state=0)

model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
t0 = time.perf_counter()
model.fit(X_tr, y_tr)
fit_s = time.perf_counter() - t0
always_dry = 1 - y_te.mean()                             # accuracy of "it never rains"
persistence = ((X_te[:, FEATURES.index("wet_now")] > 0.5) == y_te).mean()
month_scores = {"always dry": always_dry, "persistence (rain next if it rains now)": persistence,
                "logistic regression": model.score(X_te, y_te)}
print(f"one month: {X_month.shape[0]:,} rows × {X_month.shape[1]} features, {X_month.nbytes / 2**20:.0f} MiB; "
      f"fit on {len(y_tr):,} rows in {fit_s:.2f} s")
course.table([{"model (one month)": k, "test accuracy": f"{v:.3f}"} for k, v in month_scores.items()])

# %% [markdown]
# The model beats "always dry" by far, so the target is learnable from these features, and it at
# least matches persistence, a hard trivial forecast to beat for rain: most of what a linear model
# learns here is "rain tends to go on". (Always check this first. A model that cannot beat the
# trivial forecasts on one month will not beat them on ten years either.) `predict` gives the class, `predict_proba` the probability of rain:

# %%
#| label: predict
print("predicted:", model.predict(X_te[:8]))
print("observed: ", y_te[:8])
print("P(rain):  ", model.predict_proba(X_te[:8])[:, 1].round(2))

# %% [markdown]
# ## 3. Compute-bound: many fits on data that fit
#
# Choosing a model's settings (its *hyper-parameters*) means fitting it many times: a grid search
# tries every combination, each with k-fold cross-validation. The data fit in memory; the *work* is
# the problem. Each fit is independent, so this is embarrassingly parallel, and scikit-learn runs the
# fits through **joblib**. `joblib.parallel_backend("dask")` sends them to a Dask cluster instead of
# local processes: the same code then uses every worker of a cluster, on one machine or on many.
#
# We search a random forest (a model whose single fit is slow enough to be worth spreading) on a
# sample of the month, once on one core and once on the cluster.

# %%
#| label: grid-search
import joblib
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV

rng = np.random.default_rng(0)
pick = rng.choice(len(y_tr), size=min(len(y_tr), 8_000), replace=False)
grid = {"max_depth": [6, 12], "max_features": [0.3, 0.6]}
forest = RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=1)

t0 = time.perf_counter()
serial = GridSearchCV(forest, grid, cv=3, n_jobs=1).fit(X_tr[pick], y_tr[pick])
serial_s = time.perf_counter() - t0

client = clusters.client(n_workers=N_WORKERS, threads_per_worker=1)
print(f"dashboard: {client.dashboard_link}")
idle_rss = ml.idle_worker_bytes(client)     # measured here, used in section 4 to size the memory limit


def search_on_cluster():     # joblib's backend is chosen per thread, so inside the function
    with joblib.parallel_backend("dask", wait_for_workers_timeout=60):
        return GridSearchCV(forest, grid, cv=3, n_jobs=-1).fit(X_tr[pick], y_tr[pick])


t0 = time.perf_counter()     # joblib waits for Dask by itself: ml.call_with_deadline gives it a deadline
parallel = ml.call_with_deadline(client, search_on_cluster, "the grid search on the cluster")
parallel_s = time.perf_counter() - t0
n_fits = 3 * len(grid["max_depth"]) * len(grid["max_features"]) + 1
grid_rows = [{"run": "one core (n_jobs=1)", "workers": 1, "time": f"{serial_s:.1f} s", "speed-up": "1.00"},
             {"run": "Dask cluster (joblib backend)", "workers": N_WORKERS, "time": f"{parallel_s:.1f} s",
              "speed-up": f"{serial_s / parallel_s:.2f}"}]
print(f"{n_fits} fits; best {parallel.best_params_}, CV accuracy {parallel.best_score_:.3f}\n{course.hardware()}")
course.table(grid_rows)

# %% [markdown]
# The best settings are the same either way (the check cell tests it); only the time differs. The
# speed-up is at most the number of workers, less when the machine is busy or the fits are short
# compared with shipping the data to the workers. joblib submits the fits and waits for them itself,
# so the lab's usual deadline cannot reach inside; `ml.call_with_deadline` runs the search in a
# thread and cancels its tasks on the cluster if it takes longer than the deadline.
#
# **When the data fit but the fitting is slow, parallelise the fits.** When the data do not fit, no
# amount of parallel fitting helps: the model has to see the data in pieces.

# %% [markdown]
# ## 4. Data-bound: training on more data than the workers may hold
#
# Now the whole dataset. We open every file lazily, in **blocks** of a few time steps, and build the
# same features. The block size comes from a target size for one block of features (tens of MiB, as
# in episode 04), not from this machine.

# %%
#| label: lazy-features
BLOCK_BYTES = 32 * 2**20                          # one block of features: tens of MiB, as in episode 04
with xr.open_dataset(files[0]) as first:
    points = first.latitude.size * first.longitude.size
steps_per_block = max(1, round(BLOCK_BYTES / (points * len(FEATURES) * 4)))
ds = open_dataset(files, steps_per_block)
X, y = features(ds)
print(f"X: {X.shape[0]:,} rows × {X.shape[1]} features = {X.nbytes / 2**30:.2f} GiB (float32), "
      f"in {X.numblocks[0]} blocks of {steps_per_block} time steps")

# %%
X  # the lazy array itself (its own cell: the slides show only the line above)

# %% [markdown]
# **How much memory may a worker have?** Enough for what it holds when idle plus a few blocks in
# flight, and no more: the point is to show that the workers stay under a limit much smaller than the
# data. But what does *one block* cost? Its features are about 32 MiB of float32, yet building them makes
# temporary arrays, the scaler and scikit-learn make float64 copies, and `partial_fit` needs its own
# room. Rather than guess, we **measure** it: `ml.peak_on_worker` runs one block's whole pipeline
# (read, features, scaling, `partial_fit`) as a single task on a worker and reads the worker's peak
# memory above its idle level from the operating system.
#
# Then the limit. Each training call below hands the model `BLOCKS_PER_CALL` blocks; in the worst case
# one worker holds all of them while it builds one more, so a worker needs room for
# `k = BLOCKS_PER_CALL + 1` blocks above idle. Dask starts spilling a worker's data to disk at 70 % of its
# limit and pauses it at 80 %, so the limit is that room divided by the spill fraction (read from Dask's
# configuration): what we expect a worker to use sits at 70 %, and the margin up to 80 % is for what we
# did not foresee. The table at the end of section 7 shows how much of that margin each step used.
#
# The same limit must hold for every later step, so each is built to
# keep only a few blocks per worker: training takes `BLOCKS_PER_CALL` blocks per call; the scaler and the
# maps are reductions, where Dask starts about one block per worker thread at a time (root-task queuing,
# episode 04) and keeps only small partial results; the samples read a few blocks, never all.

# %%
#| label: memory-budget
from sklearn.base import clone
from sklearn.linear_model import SGDClassifier

sgd = SGDClassifier(loss="log_loss", alpha=1e-5, average=True, random_state=0)


def one_block(Xb, yb):
    """All that a worker does to one block: read it, build its features, scale them, learn from them."""
    Xb, yb = dask.compute(Xb, yb, scheduler="sync")
    clone(sgd).partial_fit(StandardScaler().fit_transform(Xb), yb, classes=[0, 1])


block_cost = max(ml.peak_on_worker(client, one_block, X.blocks[i], y.blocks[i])
                 for i in (0, X.numblocks[0] // 2))           # two blocks: the first, one mid-period
BLOCKS_PER_CALL = N_WORKERS                          # blocks per training call: one per worker
k = BLOCKS_PER_CALL + 1                              # the call's blocks + the one being built
spill = dask.config.get("distributed.worker.memory.spill")    # 0.7 unless configured
memory_limit = int((max(idle_rss) + k * block_cost) / spill)
budget = memory_limit - max(idle_rss)                # what a worker may use above idle
client.close()                                       # the next cluster has this limit
print(f"one block: {max(X.chunks[0]) * len(FEATURES) * 4 / 2**20:.0f} MiB of features, "
      f"measured peak {block_cost / 2**20:.0f} MiB")
print(f"limit = (idle {max(idle_rss) / 2**20:.0f} MiB + {k} × {block_cost / 2**20:.0f} MiB) / {spill}"
      f" = {memory_limit / 2**20:,.0f} MiB per worker, {N_WORKERS} workers")

# %% [markdown]
# `dask_ml` mirrors scikit-learn's tools for Dask arrays. Its `train_test_split` splits every block
# at random (no row moves between blocks, so nothing is loaded), and its `StandardScaler` learns the
# means and standard deviations in one pass over the data. Then the model: `SGDClassifier` (a logistic
# regression trained by stochastic gradient descent) has a `partial_fit` method that updates the model
# with one batch of rows (`average=True` keeps the average of the weights over the pass, which is
# much steadier after a single pass than the last weights). `Incremental` wraps it and calls `partial_fit` on one block after another.
#
# `Incremental.fit(X, y)` would walk through all blocks in one computation. But the blocks can be
# read and prepared faster than the model, a chain, can eat them, and Dask would read ahead and hold
# the blocks waiting their turn: memory would grow with the data. So we hand `Incremental.partial_fit`
# `BLOCKS_PER_CALL` blocks at a time (one per worker), in a shuffled order: the workers read those
# blocks in parallel, the model learns from them, and only then are the next ones read. That bounds the
# read-ahead, and so the memory, whatever the size of the data.
#
# dask-ml starts these computations itself (`dask.compute` inside `fit`). So that they too have a
# deadline and say what went wrong instead of hanging, we run each step inside `steps(...)` (an
# `ml.Steps`): every computation in the block goes through the same watch as `clusters.compute`, and
# the peak memory of every worker process is sampled from the operating system while it runs.

# %%
#| label: incremental-train
from dask_ml.model_selection import train_test_split as dask_split
from dask_ml.preprocessing import StandardScaler as DaskScaler
from dask_ml.wrappers import Incremental

client = clusters.client(n_workers=N_WORKERS, threads_per_worker=1, memory_limit=memory_limit, local_only=True)
steps = ml.Steps(client)      # each step: a deadline, its time, every worker's peak memory
X_train, X_test, y_train, y_test = dask_split(X, y, test_size=0.2, random_state=0)
with steps("scaler: one pass"):
    scaler = DaskScaler().fit(X_train)

incremental = Incremental(clone(sgd), scoring="accuracy", random_state=0)
X_scaled = scaler.transform(X_train)
order = np.random.default_rng(0).permutation(X_scaled.numblocks[0])   # blocks in a shuffled order
sampler = clusters.WorkerMemorySampler()
idle_now = sum(ml.idle_worker_bytes(client))
with steps("training: one pass"), sampler.sample("training"):
    t0 = time.perf_counter()
    for i in range(0, len(order), BLOCKS_PER_CALL):  # a few blocks per call: read in parallel, fit in turn
        some = order[i:i + BLOCKS_PER_CALL]
        incremental.partial_fit(X_scaled.blocks[some], y_train.blocks[some], classes=[0, 1])
    train_s = time.perf_counter() - t0
peak = max(b for _, b in sampler.samples["training"])
n_train = X_train.shape[0]
train_rows = [
    {"quantity": "training features (float32)", "value": f"{X_train.nbytes / 2**20:,.0f} MiB"},
    {"quantity": "worker memory limit × workers", "value": f"{memory_limit / 2**20:,.0f} MiB × {N_WORKERS}"},
    {"quantity": "idle workers (sum, OS)", "value": f"{idle_now / 2**20:,.0f} MiB"},
    {"quantity": "peak of the workers while training (sum, OS)", "value": f"{peak / 2**20:,.0f} MiB"},
    {"quantity": "training time", "value": f"{train_s:.1f} s"},
    {"quantity": "throughput", "value": f"{n_train / train_s:,.0f} samples/s"},
]
print(course.hardware())
course.table(train_rows)

# %% [markdown]
# Look at the numbers: the workers' peak stays near the idle memory plus a few blocks, while the model
# has seen every training row. The data could be ten times larger and the peak would not move, only
# the time. (With `COURSE_SIZE=workshop` the training features are many times the memory the workers
# may use.)

# %%
#| label: fig-memory
#| fig-cap: "Memory of the worker processes (sum, from the operating system) while the model trains block by block, against the idle workers and the sum of their memory limits."
#| fig-alt: "Line chart of worker memory in MiB against seconds during training. The line stays flat a little above the dashed idle line and far below the dotted line of the workers' combined memory limit."
t, b = np.array(sampler.samples["training"]).T
fig, ax = plt.subplots(figsize=(10, 4.2))
ax.plot(t, b / 2**20, label="workers while training")
ax.axhline(idle_now / 2**20, ls="--", color="0.4", label="idle workers")
ax.axhline(N_WORKERS * memory_limit / 2**20, ls=":", color="k", label="memory limit × workers")
ax.set(xlabel="seconds", ylabel="MiB", ylim=(0, 1.1 * N_WORKERS * memory_limit / 2**20))
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# ## 5. Same model, honest comparison
#
# A score means little alone. We compare four models on the **same** test rows (a sample of the test
# set small enough to hold in memory):
#
# - *always dry*: the climatological answer for most points;
# - *persistence*: rain in the next step if it rains now;
# - *scikit-learn in memory*: the same scaler and linear model, trained on a subsample of the training
#   rows that fits in memory (all a single machine could do without Dask);
# - *dask-ml `Incremental`*: trained on every training row, block by block (its `predict` also works
#   block by block on Dask arrays, like `ParallelPostFit` below);
# - *xgboost.dask* (gradient-boosted trees, trained across the workers): see section 7.
#
# Reading a sample must not read everything: we take rows from a few blocks spread evenly over the
# whole period (every season, every year), every `m`-th row of each, so that a sample is about as many
# rows as one block, which we know fits: we measured what a worker needs to process one block. The
# test sample scores every model; the training sample is what "in memory" trains on.

# %%
#| label: samples
m = min(X.numblocks[0], 16)                               # blocks in the sample, spread over the period
picked = np.linspace(0, X.numblocks[0] - 1, m).round().astype(int)


def sample(a):
    return da.concatenate([a.blocks[i][::m] for i in picked])   # every m-th row of each picked block


with steps("samples: a few blocks"):
    Xt, yt, Xs, ys = dask.compute(sample(X_test), sample(y_test), sample(X_train), sample(y_train))
in_memory = make_pipeline(StandardScaler(), clone(sgd))
t0 = time.perf_counter()
in_memory.fit(Xs, ys)
in_memory_s = time.perf_counter() - t0
print(f"test sample {len(yt):,} rows; in-memory training sample {len(ys):,} rows ({Xs.nbytes / 2**20:.0f} MiB)")

# %% [markdown]
# ## 6. Predicting at scale, back onto the map
#
# `ParallelPostFit` wraps any fitted scikit-learn estimator so that `predict` and `predict_proba`
# return lazy Dask arrays, computed block by block on the workers. Here we wrap a pipeline of the
# learnt scaling and the trained model, predict the probability of rain for every row of the dataset,
# and reshape it back to (time, latitude, longitude): an `xarray.DataArray` with the coordinates of the
# data. One reduction then gives the map of how often the model expects rain, next to how often it
# rained.

# %%
#| label: parallel-post-fit
from dask_ml.wrappers import ParallelPostFit
from sklearn.preprocessing import StandardScaler as SkScaler

fitted_scaler = SkScaler()
for attr in ("mean_", "scale_", "var_", "n_samples_seen_", "n_features_in_"):
    setattr(fitted_scaler, attr, getattr(scaler, attr))
predictor = ParallelPostFit(make_pipeline(fitted_scaler, incremental.estimator_))
p_rain = predictor.predict_proba(X)[:, 1]                     # lazy: nothing computed yet
grid_now = ds.t2m.isel(time=slice(0, -1))
p_map = xr.DataArray(p_rain.reshape(grid_now.shape).rechunk(grid_now.chunks), coords=grid_now.coords,
                     dims=grid_now.dims, name="p_rain")
observed = (ds.tp.isel(time=slice(1, None)) * 1000 > RAIN_MM)
with steps("maps: predict every row"):
    predicted_freq, observed_freq = dask.compute(p_map.mean("time"), observed.mean("time"))
print(p_map)

# %%
#| label: fig-rain-maps
#| fig-cap: "How often it rains in the next time step: observed in the dataset (left) and the mean predicted probability of the incremental model over every time step (right)."
#| fig-alt: "Two world maps with the same viridis colour scale from 0 to 1. Observed on the left, predicted on the right: the predicted map reproduces the large-scale pattern of the observed one, including a band of low values along the equator, and is smoother."
import cartopy.crs as ccrs

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), subplot_kw={"projection": ccrs.Robinson()})
for ax, field, title in zip(axes, [observed_freq, predicted_freq], ["observed", "predicted"]):
    im = field.plot(ax=ax, transform=ccrs.PlateCarree(), cmap="viridis", vmin=0, vmax=1, add_colorbar=False)
    ax.coastlines(linewidth=0.5)
    ax.set_title(title)
fig.colorbar(im, ax=axes, orientation="horizontal", shrink=0.5, pad=0.05, label="fraction of time steps with rain next")
plt.show()

# %% [markdown]
# ## 7. Where the ecosystem stands
#
# **dask-ml is in maintenance.** Version 2025.1.0 works for what this lab uses (`Incremental`,
# `ParallelPostFit`, `StandardScaler`, `train_test_split`), but two of its well-known pieces fail with
# current Dask, and you should know before you build on them:
#
# - `HyperbandSearchCV` and `IncrementalSearchCV` (adaptive hyper-parameter search) stop with
#   *"Attempting to use an asynchronous Client in a synchronous context"* (dask/dask-ml#1016).
#   Workaround: `GridSearchCV` / `RandomizedSearchCV` from scikit-learn with the joblib Dask backend
#   (section 3), on a sample that fits.
# - `dask_ml.metrics.r2_score`, and so the default `score` of every dask-ml **regressor**, fails
#   (dask/dask-ml#1012). Workaround: compute R² yourself from Dask arrays, as below.
#
# The cell below shows both failures, caught, and the R² workaround.

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

# %% [markdown]
# **The maintained route for gradient boosting on a cluster is `xgboost.dask`.** XGBoost trains
# boosted trees with one process per worker, which talk to each other directly. Install the CPU-only
# wheel, `pip install xgboost-cpu` (conda-forge: `py-xgboost-cpu`); the default `xgboost` wheel on
# Linux pulls in NVIDIA's NCCL and CUDA libraries, hundreds of MB a laptop never uses.
#
# One honest difference: `xgboost.dask` loads its training data into the workers' memory (a
# `DaskDMatrix` is persisted), so the training set must fit in the cluster's combined memory. It is a
# cluster tool for data that fit *across* machines, not an out-of-core one. We train it on the same
# in-memory subsample the scikit-learn model had: about one block's rows, which the budget we measured
# has room for, spread over the workers. `xgboost.dask.train` waits for the workers by itself, so
# `ml.call_with_deadline` gives it its deadline.

# %%
#| label: xgboost
import xgboost
import xgboost.dask

xgb_X = da.from_array(Xs, chunks=(max(1, len(Xs) // N_WORKERS), -1))
xgb_y = da.from_array(ys, chunks=(xgb_X.chunks[0],))
params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6, "nthread": 1}


def train_trees():
    dtrain = xgboost.dask.DaskDMatrix(client, xgb_X, xgb_y)
    return xgboost.dask.train(client, params, dtrain, num_boost_round=50)["booster"]


with steps("xgboost.dask: the sample"):
    t0 = time.perf_counter()
    booster = ml.call_with_deadline(client, train_trees, "xgboost.dask training")
    xgb_s = time.perf_counter() - t0
xgb_accuracy = float(((booster.inplace_predict(Xt) > 0.5) == yt).mean())
print(f"xgboost {xgboost.__version__}: {len(ys):,} rows, trained in {xgb_s:.1f} s")

# %%
#| label: scores
predict_sample = incremental.predict(scaler.transform(Xt.copy()))
scores = [
    ("always dry", "none", 1 - yt.mean()),
    ("persistence", "none", ((Xt[:, FEATURES.index("wet_now")] > 0.5) == yt).mean()),
    ("scikit-learn SGD, in memory", f"{len(ys):,} rows (sample)", in_memory.score(Xt, yt)),
    ("dask-ml Incremental SGD", f"{n_train:,} rows (all, in blocks)", (predict_sample == yt).mean()),
    ("xgboost.dask trees", f"{len(ys):,} rows (sample)", xgb_accuracy),
]
score_rows = [{"model": m, "trained on": rows, "test accuracy": f"{acc:.3f}"} for m, rows, acc in scores]
print(f"same {len(yt):,} test rows for every model; {course.hardware()}")
course.table(score_rows)

# %% [markdown]
# Every step on the big cluster, with the highest peak of any worker (from the operating system)
# against its limit. No step holds more than a few blocks per worker, whatever the size of the data:

# %%
#| label: steps
load = ", ".join(f"{x:.1f}" for x in psutil.getloadavg())
print(f"{course.hardware()}; load average {load}")
course.table(steps.rows(memory_limit))

# %%
client.close()

# %% [markdown]
# Read the table of scores carefully. The incremental model matches the in-memory one: the same kind of model,
# and a linear model does not get much better from more rows of the same weather. What more data buys
# you here is *coverage*, every season, every region, without deciding what to throw away. Every
# model is far better than "always dry", but persistence is hard to beat: compare the trees' score
# with it to see what a more flexible model adds. Any skill score you publish should show the
# trivial forecasts next to it.

# %% [markdown]
# ## Exercises
#
# **Exercise 1 (10 min): a different target.** Predict *heavy* rain: more than 1 mm in the next step.
# Change `RAIN_MM` on the one-month data (section 2) only, and compare the logistic regression with
# "always dry". Why is accuracy a poor score now? Compute the *balanced* accuracy instead
# (`sklearn.metrics.balanced_accuracy_score`).
#
# <details><summary>Solution</summary>
#
# ```python
# from sklearn.metrics import balanced_accuracy_score
# with open_dataset(files[:1]) as month:          # the features are unchanged; only the target moves
#     y_heavy = (month.tp.isel(time=slice(1, None)).values * 1000 > 1.0).ravel()
# Xa, Xb, ya, yb = train_test_split(X_month[rows], y_heavy[rows], test_size=0.25, random_state=0)
# m = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(Xa, ya)
# print("always dry:", 1 - yb.mean(), "model:", m.score(Xb, yb))
# print("balanced:", balanced_accuracy_score(yb, m.predict(Xb)))   # always dry scores 0.5 here
# ```
# Heavy rain is rare, so "always dry" is right most of the time and accuracy looks high for every
# model. Balanced accuracy averages the hit rate of each class: a model that never predicts rain scores 0.5.
# </details>
#
# **Exercise 2 (10 min): block size and memory.** Rebuild the features with blocks four times larger
# (`BLOCK_BYTES = 128 * 2**20`), measure one block again (`memory-budget` cell), and train again while
# sampling memory. How do the block's cost, the limit and the peak move?
#
# <details><summary>Solution</summary>
#
# The measured cost of a block grows roughly with its size, and so does the limit, because we sized it
# from that cost: `(idle + k × block) / 0.7`. The peak above idle follows. Larger blocks mean fewer
# tasks and less overhead per row; smaller blocks mean less memory. Keep blocks at tens to a few hundred MiB.
# </details>
#
# **Exercise 3 (10 min): more passes.** One pass over the data is one *epoch*. Call
# `incremental.partial_fit(...)` on the training data twice more, a few blocks per call as in section 4
# (inside `ml.deadline`), and score again on the test sample. Does a second epoch help this linear model?
#
# <details><summary>Solution</summary>
#
# ```python
# client = clusters.client(n_workers=N_WORKERS, memory_limit=memory_limit, local_only=True)
# with ml.deadline(client, "more epochs"):
#     for epoch in range(2):
#         for i in range(0, len(order), BLOCKS_PER_CALL):
#             some = order[i:i + BLOCKS_PER_CALL]
#             incremental.partial_fit(X_scaled.blocks[some], y_train.blocks[some], classes=[0, 1])
# print((incremental.predict(scaler.transform(Xt.copy())) == yt).mean())
# client.close()
# ```
# The score barely moves: a linear model converges within one pass over this many rows. Extra epochs
# matter for small data or for models with more parameters. (One call with all blocks,
# `partial_fit(X_scaled, y_train)`, would let Dask read ahead of the model: see section 4.)
# </details>
#
# **Exercise 4 (5 min): where is the time?** Open the dashboard link during training. Which tasks
# take the time: reading NetCDF, building features, or `partial_fit`? Why can only one worker train
# at a time?
#
# <details><summary>Solution</summary>
#
# `partial_fit` needs the model as updated by the previous block, so training is a chain: one block
# after another, one worker busy with the model while the others read and prepare the next blocks.
# Reading and decoding run in parallel; the fitting itself does not. That is the price of out-of-core
# SGD; a grid search (section 3) or xgboost's tree building parallelise differently.
# </details>

# %% [markdown]
# ## Key points
# - scikit-learn: create an estimator, `fit` on training rows, `score` on rows it never saw; a pipeline
#   keeps the preprocessing learnt on the training set.
# - Compute-bound (many fits, data fit): `joblib.parallel_backend("dask")` spreads `GridSearchCV` over a cluster.
# - Data-bound (data do not fit): `dask_ml.wrappers.Incremental` + a `partial_fit` estimator sees the
#   data block by block; memory is set by block size, not by dataset size. Measure it.
# - Compare every model with trivial baselines (always dry, persistence) on the same test rows.
# - `ParallelPostFit` predicts lazily; put predictions back into an `xarray.DataArray` for maps.
# - dask-ml is in maintenance: avoid `HyperbandSearchCV`/`IncrementalSearchCV` (#1016) and its `r2_score`
#   (#1012). For boosted trees on a cluster use `xgboost.dask` (`xgboost-cpu`), with data that fit the cluster.

# %% [markdown]
# ## Checks
# Run by `pytest labs/10_machine_learning.py`; the slides never show this cell.

# %% tags=["checks"]
def test_target_is_learnable():
    assert month_scores["logistic regression"] > month_scores["always dry"] + 0.05
    assert month_scores["logistic regression"] > month_scores["persistence (rain next if it rains now)"] - 0.01


def test_grid_search_same_answer_serial_and_parallel():
    assert serial.best_params_ == parallel.best_params_
    np.testing.assert_allclose(serial.cv_results_["mean_test_score"], parallel.cv_results_["mean_test_score"])


def test_every_training_row_seen():
    assert incremental.estimator_.t_ > n_train  # SGD counts the samples it has seen (t_ starts at 1)


def test_workers_stay_under_their_limit():
    assert peak < N_WORKERS * memory_limit
    assert steps.highest() < 0.95 * memory_limit  # no worker in any step came near where Dask kills it
    if course.size() != "small":  # the data fed to training are many times what the workers may hold
        assert X_train.nbytes >= 4 * N_WORKERS * memory_limit


def test_working_memory_small_relative_to_data():
    # Above the idle workers, training holds a few blocks, not the data (relative check at any size).
    assert peak - idle_now < max(0.5 * X_train.nbytes, 2 * N_WORKERS * budget)
    assert peak - idle_now < N_WORKERS * budget + 2**28


def test_incremental_model_as_good_as_in_memory():
    inc_acc = scores[3][2]
    assert inc_acc > scores[0][2] + 0.05
    assert inc_acc > scores[2][2] - 0.02


def test_prediction_back_on_the_grid():
    assert p_map.dims == ("time", "latitude", "longitude")
    assert float(predicted_freq.min()) >= 0 and float(predicted_freq.max()) <= 1
    assert np.corrcoef(predicted_freq.values.ravel(), observed_freq.values.ravel())[0, 1] > 0.5


def test_broken_pieces_shown_and_workaround_right():
    from sklearn.metrics import r2_score as sk_r2
    np.testing.assert_allclose(r2_workaround, sk_r2(demo_y_values, 0.9 * demo_y_values), rtol=1e-9)
    assert "HyperbandSearchCV" in broken and "dask_ml r2_score" in broken


def test_xgboost_beats_baselines():
    assert xgb_accuracy > scores[0][2] + 0.05 and xgb_accuracy > scores[1][2] - 0.005


def test_clusters_closed():
    assert client.status == "closed"


course.run_checks(globals())
