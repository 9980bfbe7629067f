"""Which of the candidate answers that ran is served (``generation.selector``).

Candidates that return the same rows form a group. ``majority``: the biggest group wins, ties
to the earliest candidate (the greedy one first). ``likelihood``: each group weighs the sum
of its members' ``exp(mean token log-probability)`` (engine.backends.base.Scored), ties to
the majority rule. Each member adds a weight in (0, 1], its per-token geometric mean
probability: a group still gains by every member, as in the majority, and a few confident
answers can outweigh more unsure ones. (A sum of the log-probabilities themselves would not
do: they are negative, so every member would count against its group.) Where any candidate
that ran has no score (a backend that cannot tell), the majority decides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def choose(
    groups: Sequence[Sequence[int]], logprobs: Sequence[float | None], selector: str = "majority"
) -> int:
    """The position in ``groups`` of the winning group. ``groups``: candidate indexes that
    agree, each group in candidate order; ``logprobs``: each candidate's score by index."""

    def majority(k: int) -> tuple[int, int]:
        return len(groups[k]), -groups[k][0]

    members = [i for group in groups for i in group]
    if selector == "likelihood" and all(logprobs[i] is not None for i in members):

        def weight(k: int) -> tuple[float, int, int]:
            return (sum(math.exp(logprobs[i]) for i in groups[k]), *majority(k))  # type: ignore[arg-type]

        return max(range(len(groups)), key=weight)
    return max(range(len(groups)), key=majority)
