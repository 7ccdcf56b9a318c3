"""The pea-soup recipe (erwtensoep) as tasks with durations and dependencies, and a kitchen to cook it in.

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
    "dice celeriac": (10, ("peel celeriac",)),
    "peel carrots": (6, ()),
    "dice carrots": (7, ("peel carrots",)),
    "fry bacon": (12, ()),
    "add vegetables": (2, ("cook peas", "dice potatoes", "fry onion", "chop leek", "dice celeriac",
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
