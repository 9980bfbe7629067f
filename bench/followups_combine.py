"""Rows for combinations of follow-up ways, told from the records of their ways' own rows.

    PYTHONPATH=. .venv/bin/python bench/followups_combine.py RECORDS.jsonl [...] \\
        [--rows compose+scope+edit+rewrite,compose+scope+edit,edit+rewrite,form] [--part …]

``bench/followups.py --records`` writes each answer of each row with its result rows (as a
digest) and whether it ran. A combination of ways (``edit+rewrite``) keeps the answer whose
rows most of its ways share, ties to the first way, the first way's failure when none ran
(engine.conversation.vote_by_rows); ``form`` is ``previous`` for a follow-up about
them/those/their and ``edit`` for the rest (engine.conversation.ways_for). So a combination's
right answers follow from its ways' records without asking the model again; seconds per
answer are those of the ways each follow-up is asked with added up, averaged (each way is one
more answer; a rewrite adds its own short generation to the rewrite way's time). The
engine's own run of a combination can differ slightly (its ways are decoded in one batch);
check the chosen one with a run of bench/followups.py. Records of one way in several files:
the later file's stand (a rerun of a way after a change overrides the older run).

One run of the widest combination tells the narrower ones too: its records keep every way's
rows for each follow-up it asked several ways (``voters``), and ``--voters-of ROW`` splits
those records into each way's own (:func:`split_voters`; their seconds are not told, 0).

A combination with ``compose`` (``compose+edit+rewrite``) needs no records of it: the
follow-ups engine.compose writes are composed here from the conversation's first SQL and
run on the database (:func:`composed_records`, no model), and take no seconds; the others
are told from the records of the combination's other ways as above.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.followups_set import FILE, load_conversations  # noqa: E402

ROWS = (
    "compose+scope+edit+rewrite,compose+scope+edit,compose+edit+rewrite,edit+rewrite,"
    "rewrite+edit,form,form+rewrite,edit+previous"
)


def conversation(record: dict[str, Any]) -> tuple[str, str]:
    """What tells a conversation's records apart: its two questions (two conversations may
    share a follow-up: "what cities do they live in?")."""
    return record["first"], record["followup"]


def expand(row: str, question: str) -> list[str]:
    """The ways a combination asks ``question`` with (engine.conversation.ways_for: ``form``
    resolved by its wording); a question not worded as a follow-up is asked alone, the same
    in every way's records, so its first way's record stands for it."""
    from engine.conversation import FollowupConfig, ways_for

    ways = [w for w in ways_for(FollowupConfig(way=row), question, [("", "")]) if w != "compose"]
    first = next(w for w in row.split("+") if w != "compose")
    return ways or [first.replace("form", "edit")]


def pick(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """The record engine.conversation.vote_by_rows keeps, of records in the ways' order."""
    from engine.answer import Answer
    from engine.conversation import vote_by_rows

    stand_ins = [
        Answer(question="", rows=[[a["rows"]]], error=None if a["ok"] else "failed")
        for a in answers
    ]
    best = vote_by_rows([(None, s) for s in stand_ins])
    return answers[next(k for k, s in enumerate(stand_ins) if s is best)]


class _NoModel:
    """A backend that answers nothing: the engine composes what it can without a model,
    and every other question fails (those are told from the ways' records instead)."""

    name = "no-model"
    context_length = 4096

    def __init__(self) -> None:
        from engine.prompt import DEFAULT_FORMAT

        self.prompt_format = DEFAULT_FORMAT

    def render(self, messages: list[dict[str, str]]) -> str:
        return json.dumps(messages)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, prompts: list[str], cfg: Any) -> list[str]:
        raise RuntimeError("no model: only composed follow-ups are answered here")


def composed_records(row: str, items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """By follow-up, the record of each one a row with ``compose`` answers by composing,
    scored against its gold SQL: the engine's own answer loop (TextToSQL with this row's
    ways) over a backend that answers nothing, so only what it composes comes back."""
    from bench.followups import rows_digest
    from engine.answer import Request
    from engine.conversation import FollowupConfig
    from engine.pipeline import TextToSQL
    from training.metrics import execution_match

    if "compose" not in row.split("+"):
        return {}
    engine = TextToSQL(_NoModel(), followup=FollowupConfig(way=row), max_attempts=1)
    requests = [Request(i["followup"], i["db_path"], [(i["first"], i["first_sql"])]) for i in items]
    found = {}
    for item, answer in zip(items, engine.ask_batch(requests), strict=True):
        if answer.way != "compose":
            continue
        correct = answer.ok and execution_match(
            answer.sql, item["followup_sql"], db_path=item["db_path"]
        )
        found[conversation(item)] = {
            "kind": item["kind"],
            "ok": answer.ok,
            "rows": rows_digest(answer.rows) if answer.ok else None,
            "correct": bool(correct),
            "inherited": item["kind"] == "unrelated",  # answered as a follow-up
        }
    return found


ALONE_WAYS = ("edit", "rewrite", "previous", "history", "scope")


def split_voters(records: list[dict[str, Any]], row: str) -> list[dict[str, Any]]:
    """``row``'s records as the records of each way it asked: a follow-up answered several
    ways gives one record per way from its ``voters`` (way -> [right, rows digest or None]);
    one asked alone (not a follow-up) is the same answer in every way; one answered a single
    way is that way's. Other rows' records are left out."""
    out = []
    for r in records:
        if r["row"] != row or r.get("way") == "compose":
            continue
        base = {k: r[k] for k in ("first", "followup", "kind")} | {"s_per_answer": 0.0}
        voters = r.get("voters")
        if voters:
            for way, (right, digest) in voters.items():
                ran = digest is not None
                out.append({**base, "row": way, "ok": ran, "rows": digest, "correct": right})
            for way in {w for w in row.split("+") if w != "compose"} - set(voters):
                # not asked (a rewrite that came back unchanged): no vote in any combination
                out.append({**base, "row": way, "absent": True})
            continue
        same = {k: r[k] for k in ("ok", "rows", "correct", "inherited") if k in r}
        for way in ALONE_WAYS if r.get("way") is None else (r["way"],):
            out.append({**base, **same, "row": way})
    return out


def combine(
    records: list[dict[str, Any]],
    row: str,
    parts: dict[str, str],
    part: str,
    composed: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One combination's JSON line on ``part`` (or ``all``); ``composed``: the records of
    the follow-ups the row answers by composing (:func:`composed_records`)."""
    composed = composed or {}
    by_way: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    seconds: dict[str, float] = {}
    for r in records:
        by_way[r["row"]][conversation(r)] = r
        seconds[r["row"]] = r.get("s_per_answer", 0.0)
    right: dict[str, list[bool]] = defaultdict(list)
    inherited = 0
    cost = []
    for key, its_part in parts.items():
        if part != "all" and its_part != part:
            continue
        if key in composed:
            best = composed[key]
            cost.append(0.0)
            right[best["kind"]].append(best["correct"])
            inherited += bool(best["kind"] == "unrelated" and best["inherited"])
            continue
        ways = expand(row, key[1])
        missing = [w for w in ways if key not in by_way.get(w, {})]
        if missing:
            raise ValueError(f"no records of {', '.join(missing)} for {key[1]!r} after {key[0]!r}")
        asked = [a for w in ways if not (a := by_way[w][key]).get("absent")]
        if not asked:  # a rewrite that came back unchanged is asked as scope
            asked = [a for a in [by_way.get("scope", {}).get(key, {})] if "rows" in a]
        if not asked:
            raise ValueError(f"{row} was not asked {key[1]!r} after {key[0]!r} in these records")
        best = pick(asked)
        cost.append(sum(seconds[w] for w in ways))
        right[best["kind"]].append(best["correct"])
        if best["kind"] == "unrelated" and best.get("inherited"):
            inherited += 1
    every = [x for xs in right.values() for x in xs]
    return {
        "part": part,
        "row": row,
        "derived": True,
        "n": len(every),
        "right": sum(every),
        "accuracy": round(sum(every) / max(1, len(every)), 3),
        **{k: f"{sum(v)}/{len(v)}" for k, v in sorted(right.items())},
        "unrelated_inherited": inherited,
        "s_per_answer_of_ways": round(sum(cost) / max(1, len(cost)), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="+", type=Path)
    parser.add_argument("--rows", default=ROWS)
    parser.add_argument("--part", choices=("tune", "final", "all"), default="all")
    parser.add_argument("--file", type=Path, default=FILE, help="the conversations")
    parser.add_argument(
        "--voters-of", metavar="ROW", help="split this row's records into its ways' (voters)"
    )
    args = parser.parse_args(argv)
    records = [
        json.loads(line)
        for path in args.records
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    if args.voters_of:
        records = split_voters(records, args.voters_of)
    conversations = load_conversations(args.file)
    parts = {conversation(c): c["part"] for c in conversations}
    if len(parts) != len(conversations):
        raise SystemExit("two conversations are the same two questions; records cannot tell them")
    counts = Counter(r["row"] for r in records)
    print(json.dumps({"records": dict(counts)}), file=sys.stderr)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    composed = {
        row: composed_records(row, conversations) if "compose" in row.split("+") else {}
        for row in rows
    }
    for part in ("tune", "final") if args.part == "all" else (args.part,):
        for row in rows:
            try:
                print(json.dumps(combine(records, row, parts, part, composed[row])))
            except ValueError as err:  # told from a wider row that did not ask this one's ways
                print(json.dumps({"part": part, "row": row, "error": str(err)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
