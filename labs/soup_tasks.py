"""Dutch pea soup (erwtensoep) as Python functions, one per step, for Dask's ``delayed`` and futures.

A shortened version of episode 01's recipe, with the same steps and minutes. Every step "takes"
its recipe minutes, scaled down: one recipe minute lasts ``SECONDS_PER_MINUTE`` seconds of
``time.sleep``. Sleeping is waiting, not computing (the pot simmers without the cook), so steps
that do not depend on each other can overlap even on a single core.

The functions live in this module, not in the lab: worker processes started with ``spawn`` import
them by name. Each returns a short string saying what went into it, so the soup lists its history.
"""

from __future__ import annotations

import time

SECONDS_PER_MINUTE = 0.01

#: recipe minutes of each step
MINUTES = {
    "rinse_peas": 5,
    "boil_water": 10,
    "cook_peas": 45,
    "chop": 5,  # any vegetable
    "fry_onion": 5,
    "dice_carrots": 7,
    "fry_bacon": 12,
    "add_vegetables": 2,
    "simmer_soup": 30,
    "serve": 3,
}

VEGETABLES = ("onion", "leek", "celeriac")


def _cook(step: str) -> None:
    time.sleep(MINUTES[step] * SECONDS_PER_MINUTE)


def rinse_peas(grams: int = 500) -> str:
    _cook("rinse_peas")
    return f"{grams} g rinsed peas"


def boil_water(litres: float = 2.0) -> str:
    _cook("boil_water")
    return f"{litres} l boiling water"


def cook_peas(peas: str, water: str) -> str:
    _cook("cook_peas")
    return f"cooked ({peas} in {water})"


def chop(vegetable: str) -> str:
    _cook("chop")
    return f"chopped {vegetable}"


def fry_onion(onion: str) -> str:
    _cook("fry_onion")
    return f"fried {onion}"


def dice_carrots() -> str:
    _cook("dice_carrots")
    return "diced carrots"


def fry_bacon() -> str:
    _cook("fry_bacon")
    return "fried bacon"


def add_vegetables(peas: str, *others: str) -> str:
    _cook("add_vegetables")
    return f"pot of {peas} + " + " + ".join(others)


def simmer_soup(pot: str) -> str:
    _cook("simmer_soup")
    return f"simmered [{pot}]"


def serve(soup: str) -> str:
    _cook("serve")
    return f"erwtensoep: {soup}"


def cook_serially() -> str:
    """The recipe as one cook follows it, one step after the other."""
    peas = cook_peas(rinse_peas(), boil_water())
    onion = fry_onion(chop("onion"))
    return serve(simmer_soup(add_vegetables(peas, onion, dice_carrots(), fry_bacon())))


def serial_minutes() -> int:
    """Recipe minutes when every step waits for the previous one."""
    return sum(MINUTES.values())


def critical_path_minutes() -> int:
    """Recipe minutes along the longest chain of dependent steps: no number of cooks beats it."""
    peas = max(MINUTES["rinse_peas"], MINUTES["boil_water"]) + MINUTES["cook_peas"]
    onion = MINUTES["chop"] + MINUTES["fry_onion"]
    ready = max(peas, onion, MINUTES["dice_carrots"], MINUTES["fry_bacon"])
    return ready + MINUTES["add_vegetables"] + MINUTES["simmer_soup"] + MINUTES["serve"]
