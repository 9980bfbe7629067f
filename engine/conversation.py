"""Conversations: whether a question follows up on the one before, and how it is answered.

A follow-up ("and which of them live in Leeds?") means nothing alone. The answer loop
(:meth:`engine.pipeline.TextToSQL.ask_batch`) answers it one of these *ways*, or several
that vote by their result rows as the candidates of one question do:

- ``rewrite``: the model first rewrites the follow-up into a standalone question from the
  conversation (:func:`rewrite_messages`, a short generation); that question is answered
  as any other, retrieval included, and shown as how the follow-up was understood;
- ``edit``: one prompt shows the previous question and its SQL, and asks for the new SQL
  as a change of it (:data:`EDIT_NOTE`);
- ``previous``: the conversation as chat turns, and the previous answer's rows offered as
  the table ``previous_result`` (:mod:`engine.followup`);
- ``history``: the conversation as chat turns only.

- ``scope``: the follow-up asked alone, its SQL then limited by the engine to the previous
  answer's rows when it says them/they/those/these/their (:mod:`engine.scope`);
- ``compose``: no model at all for a follow-up of a few exact forms about the previous rows
  (:func:`engine.compose.compose`): how many of something each has ("how many orders has
  each of them placed?"), an attribute of each ("what are their job titles?"), those with a
  stored value ("which of them are in Sales?"), or a new order ("sort them by salary"). The
  engine writes that SQL from the schema, and the combination's other ways are not asked;
  any other follow-up goes to them (so ``compose`` is always joined to others).

``form`` picks by the follow-up's wording: ``previous`` for one about the previous rows,
``edit`` for the rest. Whatever way wrote it, the SQL of a follow-up about them, those or
their is limited to the previous answer's rows (``scope``, on by default): a small model
that reads "which of them live in Leeds?" as every customer in Leeds is then right.

Whether a question is a follow-up at all (``detect``): ``rule`` answers a question alone
unless its wording refers back or refines (:func:`followup_form`), so a new question after
a follow-up does not inherit the old filters; ``model`` leaves that to the ways (a rewrite
that returns the question unchanged answers it alone). bench/followups.py measures each.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.answer import Answer, History, rows_key
from engine.errors import ConfigError
from engine.scope import SHORT_POINTER, refers_to_rows
from engine.setting import setting

WAYS = ("rewrite", "edit", "previous", "history", "scope", "compose")
DETECT_CHOICES = ("rule", "model")


@dataclass
class FollowupConfig:
    """How a question asked after others is answered (bench/followups.py chose these)."""

    # bench/followups_combine.py over one run of each way, tune part: compose+scope+edit and
    # compose+scope+edit+rewrite 27/37 (12 of the 19 about the previous rows), against 24/37
    # for compose+edit+rewrite (9 of 19); the rewrite stays for the understood question it
    # shows. Composed answers take no model time.
    way: str = setting(
        "compose+scope+edit+rewrite",
        "rewrite | edit | previous | history | scope | compose, several joined by + (they "
        "vote by rows, ties to the first); form is previous for questions about the previous "
        "rows (them, their, its, each one, ...), "
        "else edit; compose alone answers the few forms it writes exactly ('how many X does "
        "each of them have', 'what are their X', 'which of them are in <value>', 'sort them "
        "by X'); "
        "scope joined to others answers only questions about the previous rows",
    )
    detect: str = setting(
        "rule",
        "rule: only a question worded as a follow-up is one | model: every question after "
        "another goes to the way (a rewrite may return it unchanged)",
        choices=DETECT_CHOICES,
    )
    turns: int = setting(3, "earlier question/SQL pairs of a conversation the model sees")
    scope: bool = setting(
        True,
        "limit the SQL of a follow-up about the previous rows (them, their, its, each one, the "
        "ones listed, ...: engine.scope.refers_to_rows) to those rows, whatever way wrote it",
    )
    within: bool = setting(
        True,
        "answer a follow-up asking for some of the previous rows ('which of them …', 'only "
        "those …') with the previous SQL kept to the rows the answer gives: the previous "
        "columns, fewer rows (engine.compose.within_previous), whatever way wrote it",
    )

    def __post_init__(self) -> None:
        parts = self.way.split("+")
        if len(set(parts)) < len(parts) or set(parts) - {*WAYS, "form"}:
            raise ConfigError(
                f"followup.way must be ways of {', '.join(WAYS)} or form, joined by +, "
                f"not {self.way!r}"
            )
        if parts == ["compose"]:
            raise ConfigError(
                "followup.way compose answers only some follow-ups; join it to ways for the "
                "rest (compose+scope+edit+rewrite)"
            )
        if self.detect not in DETECT_CHOICES:
            raise ConfigError(f"followup.detect must be one of {', '.join(DETECT_CHOICES)}")
        if self.turns < 1:
            raise ConfigError("followup.turns must be at least 1")


# A question that points at earlier rows ("which of them", "those", "each one").
_REFERS = re.compile(
    r"\b(them|they|those|these|ones|each one|the same|that list|this list|such)\b"
    r"|\b(that|it|this|him|her)\W*$"
    r"|(?<!\band )(?<!\bwith )(?<!\bof )\b(their|its)\b"  # not "departments and their …"
    r"|\beach\s+of\s+(their|its)\b"  # "who is each of their advisors?"
    r"|\b(each|per|every)\s+\w+\s+(shown|listed)\b",  # "how many for each agent shown?"
    re.I,
)
# A question that only makes sense as a change of the one before ("only the ones …",
# "what about paypal?", "and by card?", "sorted by name instead").
_REFINES_START = re.compile(
    r"^\W*(and|but|or|only|just|now|also|instead|what about|how about|what if|same|then|plus|"
    r"except|excluding|without|sorted|sort|order them|limit|exclude|include|restrict)\b",
    re.I,
)
_REFINES_ANY = re.compile(r"\b(instead|as well|too|rather|the previous|above|that one)\b", re.I)
_STANDALONE_START = re.compile(
    r"^\W*(how|what|which|who|whom|whose|when|where|why|list|show|give|find|count|name|"
    r"return|get|display|tell|is|are|do|does|did|in which|for each)\b",
    re.I,
)


def followup_form(question: str) -> str | None:
    """``refers_back`` for a question about earlier rows, ``refines`` for one that changes the
    earlier question, None for one that reads as standalone."""
    text = question.strip()
    if _REFERS.search(text) or SHORT_POINTER.search(text):
        return "refers_back"
    if _REFINES_START.search(text) or _REFINES_ANY.search(text):
        return "refines"
    if len(text.split()) <= 4 and not _STANDALONE_START.search(text):
        return "refines"  # "for 2024?", "by card?"
    return None


def ways_for(cfg: FollowupConfig, question: str, history: History | None) -> tuple[str, ...]:
    """The ways a question is answered; () for a question answered alone."""
    if not history:
        return ()
    form = followup_form(question)
    if cfg.detect == "rule" and form is None:
        return ()
    about_rows = refers_to_rows(question)
    picked = "previous" if about_rows else "edit"
    ways = [picked if way == "form" else way for way in cfg.way.split("+")]
    if not about_rows and len(ways) > 1:
        # scope limits a follow-up to the previous rows: a change of the question has none
        ways = [way for way in ways if way != "scope"]
    return tuple(dict.fromkeys(ways))  # form+edit: edit once


Composer = Callable[[int, str, History], str | None]


def plan_followups(
    cfg: FollowupConfig,
    asked: list[tuple[str, History | None]],
    rewrite: Callable[[list[tuple[str, History]]], list[str]],
    compose: Composer | None = None,
) -> tuple[list[tuple[int, str | None, str, History | None]], dict[int, str]]:
    """How to answer each ``(question, history)``: steps ``(its index, way, question to
    ask, history to show)`` (way None: the question alone, without its history), and the
    rewritten questions by index. ``rewrite`` rewrites a list of follow-ups at once (the
    model; engine.pipeline.TextToSQL). ``compose(index, question, history)``: the SQL the
    engine writes itself for a follow-up (engine.compose, on that request's schema) or None;
    where it writes one, that is the follow-up's only step, ``(index, "compose", the SQL,
    history)``. Without ``compose`` the ``compose`` way is left out of the combination."""
    turns = [(history or [])[-cfg.turns :] for _, history in asked]
    ways = [ways_for(cfg, q, h) for (q, _), h in zip(asked, turns, strict=True)]
    composed = {
        i: sql
        for i, its_ways in enumerate(ways)
        if compose is not None
        and "compose" in its_ways
        and (sql := compose(i, asked[i][0], turns[i]))
    }
    ways = [
        () if i in composed else tuple(w for w in its if w != "compose")
        for i, its in enumerate(ways)
    ]
    need = [i for i, w in enumerate(ways) if "rewrite" in w]
    rewritten = rewrite([(asked[i][0], turns[i]) for i in need]) if need else []
    understood = dict(zip(need, rewritten, strict=True))
    steps: list[tuple[int, str | None, str, History | None]] = []
    for i, ((question, _), its_ways) in enumerate(zip(asked, ways, strict=True)):
        if i in composed:
            steps.append((i, "compose", composed[i], turns[i]))
            continue
        if cfg.detect == "model" and i in understood and same_question(understood[i], question):
            its_ways = ()  # the model read it as a question of its own
        if not its_ways:
            steps.append((i, None, question, None))
        for way in its_ways:
            if (
                way == "rewrite"
                and same_question(understood[i], question)
                and refers_to_rows(question)
            ):
                # no rewrite came back: asked alone, kept to the previous rows (engine.scope)
                if "scope" not in its_ways:
                    steps.append((i, "scope", question, turns[i]))
            elif way == "rewrite":
                steps.append((i, way, understood[i], None))
            else:
                steps.append((i, way, question, turns[i]))
    return steps, understood


def vote_by_rows(answered: list[tuple[str | None, Answer]]) -> Answer:
    """One question answered several ways: the answer whose rows most of the others that ran
    share, ties to the earlier way; when none ran, the first way's failure."""
    if len(answered) == 1:
        return answered[0][1]
    ran = [(k, a) for k, (_, a) in enumerate(answered) if a.ok]
    if not ran:
        return answered[0][1]
    groups: dict[tuple, list[tuple[int, Answer]]] = {}
    for k, a in ran:
        groups.setdefault(rows_key(a.rows), []).append((k, a))
    group = max(groups.values(), key=lambda g: (len(g), -g[0][0]))
    best = group[0][1]
    best.attempts = max(a.attempts for _, a in answered)
    best.candidates = sum(a.candidates for _, a in answered)
    best.votes = sum(a.votes for _, a in group)
    return best


def read_as_rewritten(best: Answer, answered: list[tuple[str | None, Answer]]) -> bool:
    """Whether the answer kept is the rewritten question's, or has its rows: only then is the
    rewrite how the follow-up was understood."""
    rows = rows_key(best.rows)
    return any(
        way == "rewrite" and (a is best or (a.ok and rows_key(a.rows) == rows))
        for way, a in answered
    )


REWRITE_SYSTEM = (
    "You rewrite a follow-up question so that it can be understood without the conversation. "
    "Replace the words that point back (them, they, those, these, their, of them, what about) "
    "with what they mean in the earlier question, keeping all of its conditions. If the "
    "follow-up asks something new, repeat it unchanged. Reply with the rewritten follow-up only."
)
# Worked examples, on a database of no shipped slice or sample (a library); each rewrite
# starts from the follow-up's own words (a 1.5B model shown merged questions repeats the
# earlier one instead: bench/followups.py, tune part).
REWRITE_SHOTS = [
    (
        [("Which members borrowed more than five books in 2023?", None)],
        "which of them live in York?",
        "Which of the members who borrowed more than five books in 2023 live in York?",
    ),
    (
        [("List the ten most borrowed books.", None)],
        "who wrote each of those?",
        "Who wrote each of the ten most borrowed books?",
    ),
    (
        [("How many loans were made in each month of 2023?", None)],
        "and in 2024?",
        "How many loans were made in each month of 2024?",
    ),
    (
        [("Which members joined in 2022?", None)],
        "How many authors are there?",
        "How many authors are there?",
    ),
]


def _conversation(history: list[tuple[str, str | None]], question: str) -> str:
    lines = [f"Earlier question: {q.strip()}" for q, _ in history]
    lines.append(f"Follow-up: {question.strip()}")
    return "\n".join(lines) + "\nRewritten follow-up:"


def rewrite_messages(question: str, history: History) -> list[dict[str, str]]:
    """The rewrite's chat: instructions, the worked examples, then this conversation."""
    messages = [{"role": "system", "content": REWRITE_SYSTEM}]
    for earlier, last, rewritten in REWRITE_SHOTS:
        messages.append({"role": "user", "content": _conversation(earlier, last)})
        messages.append({"role": "assistant", "content": rewritten})
    messages.append({"role": "user", "content": _conversation(list(history), question)})
    return messages


def parse_rewrite(text: str, question: str, earlier: Sequence[str] = ()) -> str:
    """The standalone question in the model's reply; ``question`` itself when the reply is
    empty, not a question (a model that answered with SQL, or rambled), or one of the
    ``earlier`` questions repeated (a small model's common failure: it drops the follow-up)."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    if not lines:
        return question
    line = re.sub(
        r"^(rewritten follow-up|standalone question|follow-up|question|q\d*)\s*:\s*",
        "",
        lines[0],
        flags=re.I,
    )
    line = line.strip().strip('"').strip()
    if not line or re.match(r"(?i)(select|with)\b", line) or len(line) > 4 * len(question) + 200:
        return question
    if any(same_question(line, e) and not same_question(question, e) for e in earlier):
        return question
    return line


def same_question(a: str, b: str) -> bool:
    """Whether a rewrite left the question as it was (case, spacing and end mark aside)."""

    def norm(s: str) -> str:
        return " ".join(re.sub(r"[^\w\s]", " ", s.lower()).split())

    return norm(a) == norm(b)


EDIT_NOTE = (
    "This task follows up on the previous question: {question}\n"
    "Its SQL query was: {sql}\n"
    "Write the SQL query for the task by changing that query: keep its tables, joins and "
    "conditions that the task does not change."
)


def edit_note(history: History) -> str:
    """The edit way's note: the previous question and its SQL."""
    question, sql = history[-1]
    return EDIT_NOTE.format(question=question.strip(), sql=" ".join(sql.split()))


class HistoryError(ValueError):
    """A conversation's earlier turns that are not a list of (question, SQL) turns."""


HISTORY_SHAPE = (
    'a JSON list of earlier turns, each {"question": ..., "sql": ...} or [question, sql]'
)


def parse_history(value: str | list | None) -> list[tuple[str, str]]:
    """Earlier (question, SQL) turns of a conversation from JSON (text, or already
    decoded): the shapes the API's ``history`` and ``ask --history`` take. Raises
    :class:`HistoryError` with one line saying what is wrong."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise HistoryError(
                f"history is not JSON ({err.msg}); it must be {HISTORY_SHAPE}"
            ) from None
    if not isinstance(value, list):
        raise HistoryError(f"history must be {HISTORY_SHAPE}")
    return [_turn(i, turn) for i, turn in enumerate(value, start=1)]


def _turn(i: int, turn: Any) -> tuple[str, str]:
    question = sql = None
    if isinstance(turn, dict) and "sql" in turn:  # other keys (the API's "ok") are ignored
        question, sql = turn.get("question"), turn["sql"]
    elif isinstance(turn, list) and len(turn) == 2:
        question, sql = turn
    sql = "" if sql is None else sql  # a turn that got no SQL
    if not isinstance(question, str) or not question.strip() or not isinstance(sql, str):
        shown = json.dumps(turn, ensure_ascii=False, default=str)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise HistoryError(f"history turn {i} is {shown}; history must be {HISTORY_SHAPE}")
    return question.strip(), sql.strip()
