"""Follow-up questions, answered the way the chat answers them: one JSON line per row.

    PYTHONPATH=. .venv/bin/python bench/followups.py --part tune \\
        [--rows edit,previous,form,history,rewrite,edit+rewrite,scope,edit@model] \\
        [--set key=value ...] [--records FILE]

Each conversation of ``bench/followups.json`` (bench/followups_set.py: the sample databases
and held-out Spider-train databases, a ``tune`` and a ``final`` part by database) is a first
question with its gold SQL, then a second question with its own. The first turn goes into
the history as it would after a right answer; the second is asked through the engine's
answer loop (configs/engine.yaml plus ``--set``; retrieval from a fresh index in a temporary
folder, where a sample database is indexed without its own solved pairs, as a database
nobody has seen) and scored by execution against its gold SQL.

A row is a way of answering follow-ups (engine.conversation: ``followup.way``), optionally
``@model`` for ``followup.detect=model`` (default ``rule``), ``-within`` for
``followup.within`` off (``compose+scope+edit+rewrite-within``). Kinds: ``refers_back`` (about the
previous answer's rows), ``refines`` (a change of the previous question), ``unrelated`` (a
new question: ``inherited`` counts those answered as follow-ups of the first one).
A row with ``compose`` (``compose+edit+rewrite``) runs the engine's composer first: a
follow-up it writes itself (engine.compose) is answered without the model.

Rows share their steps (:class:`Steps`): a follow-up asked one way, with the same question,
conversation and kept rows, is answered once and that answer serves every row that asks it
(``scope+edit+rewrite`` after ``scope``, ``edit`` and ``rewrite`` generates nothing new), so
the whole table costs the union of its ways. A row's seconds per answer are its own steps'
share of the batched generations that answered them, first asked by whichever row.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.followups_set import FILE, load_conversations  # noqa: E402
from engine.config import parse_overrides  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ROWS = "edit,previous,form,history,rewrite,edit+rewrite,scope,edit@model"


def parse_row(row: str) -> dict[str, Any]:
    """``WAYS[@model][-within]``: the ways, ``@model`` for ``followup.detect=model``, and
    ``-within`` for ``followup.within`` off (otherwise it stays as configured)."""
    without = row.endswith("-within")
    way, _, detect = row.removesuffix("-within").partition("@")
    return {"way": way, "detect": detect or "rule", **({"within": False} if without else {})}


def inherited(answer: Any) -> bool:
    """Whether an answer was given as a follow-up of the conversation (not as a question of
    its own): answered a way other than alone, and not rewritten into itself."""
    from engine.conversation import same_question

    if answer.way is None:
        return False
    return answer.understood is None or not same_question(answer.understood, answer.question)


def rows_digest(rows: list) -> str:
    """The answer's rows as the ways' vote compares them (engine.answer.rows_key), hashed:
    the records say which ways agreed, so a combination can be told from its ways' rows."""
    import hashlib

    from engine.answer import rows_key

    return hashlib.sha1(repr(rows_key(rows)).encode()).hexdigest()[:12]


class Steps:
    """The engine's steps, each answered once across rows: a follow-up asked one way (the
    question that way asks, its conversation, the rows it is kept within) and each rewrite
    of a follow-up. Wraps the engine's answer loop and rewriter in place; every answer a row
    gets is a copy (the vote and the loop set fields on it), and ``seconds()`` is what the
    steps asked since the last call cost when first answered."""

    def __init__(self, engine: Any) -> None:
        self.answers: dict[tuple, tuple[Any, float]] = {}
        self.rewrites: dict[tuple, tuple[str, float]] = {}
        self.used: set[tuple] = set()
        answer_all, rewrite = engine._answer_all, engine._rewrite

        def answered(asked: list, schemas: dict | None = None) -> list:
            keys = [self._key(way, request, within) for way, request, within in asked]
            todo = {k: a for k, a in zip(keys, asked, strict=True) if k not in self.answers}
            # composed steps run no model: timed apart from the generated ones
            for composed in (True, False):
                group = {k: a for k, a in todo.items() if (k[0] == "compose") == composed}
                self._answer_once(self.answers, group, lambda a: answer_all(a, schemas))
            self.used.update(keys)
            return [copy.copy(self.answers[k][0]) for k in keys]

        def rewritten(asked: list) -> list[str]:
            keys = [("rewritten", q, repr(h)) for q, h in asked]
            todo = {k: a for k, a in zip(keys, asked, strict=True) if k not in self.rewrites}
            self._answer_once(self.rewrites, todo, rewrite)
            self.used.update(keys)
            return [self.rewrites[k][0] for k in keys]

        engine._answer_all, engine._rewrite = answered, rewritten
        _record_votes()

    @staticmethod
    def _answer_once(cache: dict, todo: dict, answer: Any) -> None:
        """``answer`` the steps ``todo`` (key → what to ask) in one batch into ``cache``, each
        with its share of the batch's seconds."""
        if not todo:
            return
        started = time.perf_counter()
        got = answer(list(todo.values()))
        share = (time.perf_counter() - started) / len(todo)
        cache.update({k: (a, share) for k, a in zip(todo, got, strict=True)})

    @staticmethod
    def _key(way: str | None, request: Any, within: str | None) -> tuple:
        return (way, request.question, str(request.db_path), repr(request.history), within)

    def seconds(self) -> float:
        """What the steps asked since the last call cost, and start counting afresh."""
        total = sum((self.rewrites.get(k) or self.answers[k])[1] for k in self.used)
        self.used = set()
        return total


def _record_votes() -> None:
    """Keep on each follow-up's answer what every way it was answered gave (``voters``: way,
    its SQL and rows, None where it failed), so a record can say which ways were right and
    which agreed, not only the one kept."""
    import engine.pipeline as pipeline

    if getattr(pipeline.vote_by_rows, "records_voters", False):
        return
    vote = pipeline.vote_by_rows

    def voted(answered: list) -> Any:
        best = vote(answered)
        best.voters = [(way, a.sql if a.ok else None, rows_digest(a.rows)) for way, a in answered]
        return best

    voted.records_voters = True  # type: ignore[attr-defined]
    pipeline.vote_by_rows = voted


def _voters(answer: Any, gold: str, db_path: Any) -> dict[str, list] | None:
    """Each way's answer to a follow-up answered several ways: [right, its rows' digest (None
    where it failed)]."""
    from training.metrics import GoldSQLError, execution_match

    voters = getattr(answer, "voters", None)
    if not voters or len(voters) < 2:
        return None
    out = {}
    for way, sql, digest in voters:
        try:
            right = sql is not None and execution_match(sql, gold, db_path=db_path)
        except GoldSQLError:
            right = False
        out[str(way)] = [bool(right), digest if sql is not None else None]
    return out


def run_row(
    engine: Any, row: str, items: list[dict[str, Any]], batch: int, steps: Steps, base: Any
) -> dict[str, Any]:
    """Ask every second question (``batch`` at a time) and score it; the row's JSON line.
    ``base``: the configured follow-up settings the row's own are put over."""
    from engine.pipeline import Request
    from training.metrics import GoldSQLError, execution_match

    engine.followup = replace(base, **parse_row(row))
    requests = [
        Request(it["followup"], it["db_path"], [(it["first"], it["first_sql"])]) for it in items
    ]
    steps.seconds()
    answers = []
    for start in range(0, len(requests), batch):
        answers += engine.ask_batch(requests[start : start + batch])
    seconds = steps.seconds()
    right: dict[str, list[bool]] = {}
    records = []
    for it, answer in zip(items, answers, strict=True):
        try:
            ok = answer.ok and execution_match(
                answer.sql, it["followup_sql"], db_path=it["db_path"]
            )
        except GoldSQLError as err:
            raise SystemExit(f"gold SQL fails for {it['followup']!r}: {err}") from err
        right.setdefault(it["kind"], []).append(bool(ok))
        records.append(
            {
                "db": it["db"],
                "part": it["part"],
                "kind": it["kind"],
                "first": it["first"],
                "followup": it["followup"],
                "understood": answer.understood,
                "way": answer.way,
                "sql": answer.sql,
                "ok": answer.ok,
                "rows": rows_digest(answer.rows) if answer.ok else None,
                "correct": bool(ok),
                "inherited": it["kind"] == "unrelated" and inherited(answer),
                "s_per_answer": round(seconds / len(items), 2),
                "voters": _voters(answer, it["followup_sql"], it["db_path"]),
            }
        )
    every = [r for rs in right.values() for r in rs]
    unrelated = [a for it, a in zip(items, answers, strict=True) if it["kind"] == "unrelated"]
    line = {
        "row": row,
        "n": len(every),
        "right": sum(every),
        "accuracy": round(sum(every) / len(every), 3),
        **{f"{k}": f"{sum(v)}/{len(v)}" for k, v in sorted(right.items())},
        "unrelated_inherited": sum(inherited(a) for a in unrelated),
        "errors": sum(not a.ok for a in answers),
        "s_per_answer": round(seconds / len(items), 2),
        "load": [round(x, 2) for x in os.getloadavg()],
    }
    return {"line": line, "records": records}


def index_without_own_pairs(engine: Any, items: list[dict[str, Any]], tmp: Path) -> None:
    """Index each sample database with no solved pairs (its bundled ones would otherwise be
    indexed with it): every database is one the prompt knows nothing solved about."""
    from engine.rag.index import index_database

    if engine.retriever is None:
        return
    empty = tmp / "no_pairs.json"
    empty.write_text("[]", encoding="utf-8")
    for path in sorted({it["db_path"] for it in items if it["source"] == "sample"}):
        index_database(engine.retriever.cfg, path, examples=empty, store=engine.retriever.store)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=FILE)
    parser.add_argument("--part", choices=("tune", "final", "all"), default="tune")
    parser.add_argument("--rows", default=ROWS, help="ways, comma-separated: " + ROWS)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "engine.yaml")
    parser.add_argument("--set", nargs="*", default=[], help="engine settings, key=value")
    parser.add_argument("--records", type=Path, help="write each answer here (JSON lines)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from engine.config import EngineConfig, load_config
    from engine.conversation import FollowupConfig
    from engine.errors import ConfigError
    from engine.factory import engine_from_config

    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    for row in rows:
        try:
            FollowupConfig(**parse_row(row))
        except ConfigError as err:
            parser.error(f"row {row!r}: {err}")
    items = load_conversations(args.file, None if args.part == "all" else args.part)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {"rag.store_dir": str(Path(tmp) / "chroma"), **parse_overrides(args.set)}
        cfg = load_config(EngineConfig, args.config, overrides)
        engine = engine_from_config(cfg)
        index_without_own_pairs(engine, items, Path(tmp))
        for path in sorted({it["db_path"] for it in items}):  # indexed and primed before timing
            engine.prime(path)
        out, steps = [], Steps(engine)
        for row in rows:
            result = run_row(engine, row, items, cfg.batch_size, steps, cfg.followup)
            print(json.dumps({"part": args.part, **result["line"]}), flush=True)
            out += [{"row": row, **r} for r in result["records"]]
            if args.records:
                text = "".join(json.dumps(r) + "\n" for r in out)
                args.records.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
