"""The Spider-train databases held out for measuring, by name: three slices, none of them in
the example pool (scripts/build_example_pool.py) nor in what training learns from when it
splits with the same ``holdout`` and ``seed``.

- ``tune`` and ``final``: the databases ``training.data.split_by_database`` holds out of all
  Spider-train examples (``holdout`` 0.2, ``seed`` 0), cut in two halves by database. Settings
  are chosen on ``tune``; ``final`` gives the number reported at the end.
- ``world``: databases that look like the ones people bring (issue 24): the largest schemas,
  many tables, coded or abbreviated values ('T'/'F', 'Y'/'N', short codes). Chosen once from
  the databases the split keeps for training, by the number of columns plus ten per text
  column whose stored values are a short list of codes (at most 12 distinct values, none
  longer than three characters); the 17 highest, fixed here by name so that a change of the
  data or the rule cannot move them. Reported beside the others, never tuned on.

Spider: Yu et al., EMNLP 2018, CC BY-SA 4.0.
"""

from __future__ import annotations

import random
from pathlib import Path

SLICES = ("tune", "final", "world")
WORLD = (
    "assets_maintenance",
    "chinook_1",
    "college_1",
    "college_3",
    "cre_Doc_Tracking_DB",
    "cre_Drama_Workshop_Groups",
    "customers_and_invoices",
    "department_store",
    "hospital_1",
    "product_catalog",
    "products_for_hire",
    "protein_institute",
    "sakila_1",
    "soccer_2",
    "store_1",
    "tracking_grants_for_research",
    "tracking_software_problems",
)


def held_out_slices(data: Path, holdout: float = 0.2, seed: int = 0) -> dict[str, list[str]]:
    """Slice name -> its databases (sorted): ``tune``, ``final`` and ``world``."""
    # deferred: training.data loads sqlglot and the prompt module; WORLD alone needs neither
    from training.data import load_examples, split_by_database

    # the split of all examples, as training makes it: WORLD lies outside it by construction
    held = split_by_database(load_examples(data).examples, holdout, seed)[1]
    dbs = sorted({e.db_id for e in held} - set(WORLD))
    random.Random(seed).shuffle(dbs)
    half = len(dbs) // 2
    return {"tune": sorted(dbs[:half]), "final": sorted(dbs[half:]), "world": sorted(WORLD)}


def held_out_databases(data: Path, holdout: float = 0.2, seed: int = 0) -> set[str]:
    """Every database of every slice: what the example pool and training must never see."""
    return {db for dbs in held_out_slices(data, holdout, seed).values() for db in dbs}
