"""Dutch pea soup (erwtensoep): one recipe, used as data by lab 01 and as functions by lab 04.

* ``RECIPE``: every step with its minutes and the steps it needs first. This is the only place the
  recipe is written down.
* Lab 01 treats it as data: ``work``, ``critical_path`` and ``cook(k)`` (a kitchen of *k* cooks).
* Lab 04 cooks a shortened version (``SHORT``) with ``dask.delayed`` and futures: one Python function
  per step (``rinse_peas``, ``cook_peas``, …). Each sleeps for its minutes from ``RECIPE``. The functions
  live in this module, not in the lab, because worker processes started with ``spawn`` import them by
  name. Each returns a short string saying what went into it, so the soup lists its history.

Lab 01 runs the recipe with 1, 2, 3, … cooks. A cook is a thread; a step "takes" its minutes by sleeping
(``MINUTE`` seconds of real time per recipe minute), so cooking uses no CPU and any number of cooks fits
on a laptop. What limits the cooks is the recipe itself: a step can start only when the steps it needs
are finished.
"""

from __future__ import annotations

import functools
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

MINUTE = 0.01  # seconds of real time per recipe minute

# step: (minutes, steps it needs first)
RECIPE: dict[str, tuple[int, tuple[str, ...]]] = {
    "rinse peas": (5, ()),
    "boil water": (10, ()),
    "cook peas": (45, ("rinse peas", "boil water")),
    "peel potatoes": (10, ()),
    "dice potatoes": (5, ("peel potatoes",)),
    "chop onion": (5, ()),
    "fry onion": (5, ("chop onion",)),
    "clean leek": (6, ()),
    "chop leek": (8, ("clean leek",)),
    "peel celeriac": (8, ()),
    "chop celeriac": (10, ("peel celeriac",)),
    "peel carrots": (6, ()),
    "dice carrots": (7, ("peel carrots",)),
    "fry bacon": (12, ()),
    "add vegetables": (2, ("cook peas", "dice potatoes", "fry onion", "chop leek", "chop celeriac",
                           "dice carrots", "fry bacon")),
    "simmer soup": (30, ("add vegetables",)),
    "heat sausage": (15, ()),
    "slice sausage": (3, ("heat sausage",)),
    "slice rye bread": (5, ()),
    "slice katenspek": (5, ()),
    "make sandwiches": (8, ("slice rye bread", "slice katenspek")),
    "set table": (5, ()),
    "pour drinks": (3, ()),
    "serve": (3, ("simmer soup", "slice sausage", "make sandwiches", "set table", "pour drinks")),
}


def work(recipe=RECIPE) -> int:
    """Minutes of work in the recipe: what one cook needs."""
    return sum(minutes for minutes, _ in recipe.values())


def critical_path(recipe=RECIPE) -> tuple[int, list[str]]:
    """The longest chain of steps that must follow one another, and its minutes.

    No number of cooks can finish faster than this chain: each step on it waits for the one before.
    """

    @functools.cache
    def longest_to(step):  # (minutes, chain) of the longest chain ending with `step`
        minutes, needs = recipe[step]
        if not needs:
            return minutes, (step,)
        before = max((longest_to(s) for s in needs), key=lambda r: r[0])
        return before[0] + minutes, before[1] + (step,)

    minutes, chain = max((longest_to(s) for s in recipe), key=lambda r: r[0])
    return minutes, list(chain)


def _remaining(recipe):
    """Minutes from the start of each step to the end of the meal along its longest chain."""
    after = {s: [t for t, (_, needs) in recipe.items() if s in needs] for s in recipe}

    @functools.cache
    def rest(step):
        return recipe[step][0] + max((rest(t) for t in after[step]), default=0)

    return {s: rest(s) for s in recipe}


def cook(cooks: int, recipe=RECIPE, minute: float = MINUTE) -> list[dict]:
    """Cook ``recipe`` with ``cooks`` cooks; returns one record per step: step, cook, start, end (seconds).

    Whenever a cook is free, they take the ready step (all its needs done) with the most work after it,
    so the steps on the critical path are started first.
    """
    if cooks < 1:
        raise ValueError("cooks must be at least 1")
    priority = _remaining(recipe)
    free_cooks = list(range(cooks))
    done: set[str] = set()
    started: set[str] = set()
    log: list[dict] = []
    lock = threading.Lock()
    t0 = time.perf_counter()

    def do(step, who):
        start = time.perf_counter() - t0
        time.sleep(recipe[step][0] * minute)
        with lock:
            log.append({"step": step, "cook": who, "start": start, "end": time.perf_counter() - t0})
        return step, who

    with ThreadPoolExecutor(max_workers=cooks) as kitchen:
        running = set()
        while len(done) < len(recipe):
            ready = [s for s in recipe if s not in started and all(n in done for n in recipe[s][1])]
            for step in sorted(ready, key=priority.get, reverse=True)[: len(free_cooks)]:
                started.add(step)
                running.add(kitchen.submit(do, step, free_cooks.pop(0)))
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                step, who = future.result()
                done.add(step)
                free_cooks.append(who)
            free_cooks.sort()
    return sorted(log, key=lambda r: r["start"])


# ---------------------------------------------------------------------------------------------------
# The recipe as functions (lab 04). A step "takes" its recipe minutes by sleeping, MINUTE seconds per
# minute: sleeping is waiting, not computing (the pot simmers without the cook), so steps that do not
# depend on each other overlap even on one core.

#: the ten steps lab 04 cooks (the onion's, carrots' and bacon's side of the soup, without potatoes)
SHORT = ("rinse peas", "boil water", "cook peas", "chop onion", "fry onion", "dice carrots", "fry bacon",
         "add vegetables", "simmer soup", "serve")
VEGETABLES = ("onion", "leek", "celeriac")


def short_recipe() -> dict[str, tuple[int, tuple[str, ...]]]:
    """``RECIPE`` cut down to the ``SHORT`` steps (needs outside them dropped)."""
    return {s: (RECIPE[s][0], tuple(n for n in RECIPE[s][1] if n in SHORT)) for s in SHORT}


def _step(name: str) -> None:
    time.sleep(RECIPE[name][0] * MINUTE)


def rinse_peas(grams: int = 500) -> str:
    _step("rinse peas")
    return f"{grams} g rinsed peas"


def boil_water(litres: float = 2.0) -> str:
    _step("boil water")
    return f"{litres} l boiling water"


def cook_peas(peas: str, water: str) -> str:
    _step("cook peas")
    return f"cooked ({peas} in {water})"


def chop(vegetable: str) -> str:
    _step(f"chop {vegetable}")
    return f"chopped {vegetable}"


def fry_onion(onion: str) -> str:
    _step("fry onion")
    return f"fried {onion}"


def dice_carrots() -> str:
    _step("dice carrots")
    return "diced carrots"


def fry_bacon() -> str:
    _step("fry bacon")
    return "fried bacon"


def add_vegetables(peas: str, *others: str) -> str:
    _step("add vegetables")
    return f"pot of {peas} + " + " + ".join(others)


def simmer_soup(pot: str) -> str:
    _step("simmer soup")
    return f"simmered [{pot}]"


def serve(soup: str) -> str:
    _step("serve")
    return f"erwtensoep: {soup}"


def cook_serially() -> str:
    """The short recipe as one cook follows it, one step after the other."""
    peas = cook_peas(rinse_peas(), boil_water())
    onion = fry_onion(chop("onion"))
    return serve(simmer_soup(add_vegetables(peas, onion, dice_carrots(), fry_bacon())))
