"""Question -> prompt -> SQL -> checked -> executed rows, with self-correction.

:class:`TextToSQL` ties a model backend, an optional retriever and the safe executor
together. :meth:`TextToSQL.ask_batch` is the one answer loop: chat asks a batch of one
(:meth:`TextToSQL.ask`), evaluation and benchmarks ask many at once and only score what
comes back, so a measured number is the quality of what the chat serves.

It never raises for bad input or a failing model: every failure comes back as
:attr:`Answer.error`, one line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from engine.answer import Answer, History, Request, rows_key
from engine.backends.base import Backend, GenerationConfig, generate_scored
from engine.compose import compose as compose_followup
from engine.compose import restricts, within_previous
from engine.context import Context, Retriever, Source
from engine.conversation import (
    FollowupConfig,
    parse_rewrite,
    plan_followups,
    read_as_rewritten,
    rewrite_messages,
    vote_by_rows,
)
from engine.db import Database, DatabaseError, DbRef, QueryResult, open_database
from engine.explain import explain
from engine.followup import attach_previous, retrieval_query
from engine.literals import relink_literals
from engine.prompt import Message, Prompter, build_repair_messages, prompt_budget
from engine.schema import Schema
from engine.scope import (
    EACH,
    Entity,
    misses,
    name_rows,
    previous_entity,
    refers_to_rows,
    restrict,
)
from engine.selector import choose
from engine.sql_check import extract_sql, validate_sql

log = logging.getLogger(__name__)
# The answer loop's limits; engine.config.EngineConfig declares its settings with these.
MAX_ATTEMPTS = 2
TIMEOUT_S = 10.0
MAX_ROWS = 1000
# Any question will do: priming keeps only what every prompt on the database starts with.
PRIMING_QUESTION = "How many rows does each table have?"
# A rewritten follow-up is one question: a short generation (engine.conversation).
REWRITE_TOKENS = 96


class _Output(NamedTuple):
    """One generated answer: its text, why generation failed (None: it did not) and its mean
    token log-probability (None: unknown)."""

    text: str
    failure: str | None = None
    logprob: float | None = None


@dataclass
class _Work:
    """An answer in progress: the conversation so far and what checking needs."""

    answer: Answer
    db: Database
    schema: Schema
    messages: list[Message]
    history: History | None = None
    retrieved: bool = False  # the engine chose the context (not the caller)
    way: str = "previous"  # how the conversation is shown (engine.conversation)
    scope: Entity | None = None  # the previous rows its SQL is limited to (engine.scope)
    first: list[Message] = field(init=False)  # the question's own prompt, kept for resampling
    # A first answer that ran but too unlikely to stand alone (generation.vote_below): it
    # votes with the candidates the next attempt draws beside it.
    kept: _Output | None = None
    asked: str = ""  # the question as the model was asked it (scope: its rows named)
    within: str | None = None  # the previous SQL whose rows it asks some of (engine.compose)
    each: bool = False  # it asks something of each of the previous rows (engine.scope.EACH)
    whole: bool = False  # it asks about all of the previous rows, not for some of them

    def __post_init__(self) -> None:
        self.first = self.messages

    @property
    def previous(self) -> str | None:
        """The SQL of the conversation's last answer (engine.followup)."""
        return self.history[-1][1] if self.history else None


class TextToSQL:
    """The engine's front door: ``ask(question, db_path)`` and ``ask_batch(requests)``."""

    def __init__(
        self,
        backend: Backend,
        *,
        retriever: Retriever | None = None,
        generation: GenerationConfig | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        timeout_s: float = TIMEOUT_S,
        max_rows: int = MAX_ROWS,
        followup: FollowupConfig | None = None,
        relink_literals: bool = False,
    ) -> None:
        self.backend = backend
        self.relink_literals = relink_literals
        self.followup = followup or FollowupConfig()
        self.retriever = retriever
        self.generation = generation or GenerationConfig()
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self.max_rows = max_rows

    def prompt_budget(self) -> int:
        """Tokens the schema/context may use: the context window less room for the answer."""
        return prompt_budget(self.backend.context_length, self.generation.max_new_tokens)

    def prompter(self) -> Prompter:
        """The prompt renderer over this engine's backend, budget and retriever."""
        return Prompter(
            self.backend.prompt_format,
            self.prompt_budget(),
            self.backend.count_tokens,
            self.retriever,
        )

    def context(
        self,
        question: str,
        db: DbRef | Database,
        schema: Schema,
        retriever: Retriever | None = None,
        draft: str | None = None,
    ) -> Context:
        """:meth:`engine.prompt.Prompter.context` of this engine."""
        return self.prompter().context(question, open_database(db), schema, retriever, draft)

    def drafts(self) -> bool:
        """Whether pool examples are chosen again by a first answer (``rag.pool_draft``)."""
        cfg = getattr(self.retriever, "cfg", None)
        return bool(getattr(cfg, "pool_draft", False) and getattr(cfg, "pool_examples", 0))

    def build_messages(
        self,
        question: str,
        db: DbRef | Database,
        schema: Schema,
        history: History | None = None,
        context: Context | None = None,
    ) -> tuple[list[Message], list[Source]]:
        """:meth:`engine.prompt.Prompter.messages` of this engine."""
        return self.prompter().messages(question, open_database(db), schema, history, context)

    def ask(
        self, question: str, db_path: DbRef | Database, history: History | None = None
    ) -> Answer:
        return self.ask_batch([Request(question, db_path, history)])[0]

    def ask_batch(self, requests: Sequence[Request]) -> list[Answer]:
        """Answers in the order of ``requests``: follow-ups rewritten where their way says so
        (engine.conversation), retrieval, one batched generation per attempt, checking,
        execution, and repair of the failed ones from their own errors. A follow-up answered
        several ways keeps the answer whose rows most of the ways agree with."""
        started = time.perf_counter()
        schemas: dict[DbRef | Database, tuple[Database, Schema] | str] = {}
        plan, understood = self._plan(requests, schemas)
        # a follow-up asking for some of the previous rows: every way's answer is kept to
        # them and shows what they showed (engine.compose.within_previous)
        within = {
            i: r.history[-1][1]
            for i, r in enumerate(requests)
            if self.followup.within and r.history and self._restricts(r, schemas)
        }
        answers = self._answer_all(
            [(way, request, within.get(i) if way else None) for i, way, request in plan], schemas
        )
        chosen: dict[int, list[tuple[str | None, Answer]]] = {}
        for (i, way, _), answer in zip(plan, answers, strict=True):
            chosen.setdefault(i, []).append((way, answer))
        out = []
        for i, request in enumerate(requests):
            answer = vote_by_rows(chosen[i])
            answer.question = (request.question or "").strip()
            answer.understood = understood.get(i) if read_as_rewritten(answer, chosen[i]) else None
            out.append(answer)
        seconds = round(time.perf_counter() - started, 3)
        for answer in out:
            answer.seconds, answer.backend = seconds, self.backend.name
        return out

    def _plan(
        self, requests: Sequence[Request], schemas: dict
    ) -> tuple[list[tuple[int, str | None, Request]], dict[int, str]]:
        """What to answer for each request: ``(its index, way, request)`` per way it is
        answered (way None: the question alone; ``compose``: the request's question is the
        SQL the engine wrote), and the rewritten questions by index."""
        asked = [((r.question or "").strip(), r.history) for r in requests]

        def compose(i: int, question: str, history: History) -> str | None:
            read = self._schema(requests[i].db_path, schemas)
            if isinstance(read, str) or not history:
                return None
            db, schema = read
            lookup = _lookup(db, timeout_s=2.0)
            return compose_followup(question, history[-1][1], schema, schema.dialect, lookup)

        steps, understood = plan_followups(self.followup, asked, self._rewrite, compose)
        plan = [
            (i, way, replace(requests[i], question=question, history=history))
            for i, way, question, history in steps
        ]
        return plan, understood

    def _restricts(self, request: Request, schemas: dict) -> bool:
        """Whether a follow-up asks for some of the previous rows (engine.compose.restricts,
        told by the schema where the wording alone cannot)."""
        read = self._schema(request.db_path, schemas)
        schema = None if isinstance(read, str) else read[1]
        return restricts(request.question or "", request.history[-1][1], schema)

    def _rewrite(self, asked: list[tuple[str, History]]) -> list[str]:
        """Each follow-up rewritten by the model into a standalone question (one batched,
        greedy, short generation); the question itself where the model fails (or only
        repeats an earlier question)."""
        cfg = replace(
            self.generation,
            max_new_tokens=REWRITE_TOKENS,
            temperature=0.0,
            stop_at_statement_end=False,
        )
        prompts = [self.backend.render(rewrite_messages(q, h)) for q, h in asked]
        outputs = self._generate(prompts, [cfg] * len(prompts))
        return [
            parse_rewrite(out.text, q, [e for e, _ in h]) if out.failure is None else q
            for (q, h), out in zip(asked, outputs, strict=True)
        ]

    def _answer_all(
        self, asked: list[tuple[str | None, Request, str | None]], schemas: dict | None = None
    ) -> list[Answer]:
        """The answer loop proper: each request answered the way given (None: alone), kept
        within the rows of the previous SQL given (None: not). ``schemas``: the batch's
        databases already read (by :meth:`_schema`)."""
        schemas = {} if schemas is None else schemas
        answers: list[Answer] = []
        pending: list[_Work] = []
        for way, request, within in asked:
            if way == "compose":
                answers.append(self._composed(request, schemas))
                continue
            work = self._start(request, schemas, way or "previous")
            if isinstance(work, Answer):
                answers.append(work)
            else:
                work.answer.way, work.within = way, within
                answers.append(work.answer)
                pending.append(work)
        for attempt in range(1, self.max_attempts + 1):
            if not pending:
                break
            cfgs = self.generation.candidate_configs(attempt)
            n = len(cfgs)
            # The first candidate answers the conversation so far (a repair prompt after a
            # failure); the others are fresh samples of the question's own prompt: sampled
            # repairs tend to repeat the failed answer, fresh samples find other ones. A
            # kept answer (the confidence gate) stands in for the first.
            prompts, configs = [], []
            for work in pending:
                skip = int(work.kept is not None)
                prompts += self._prompts([work], n)[skip:]
                configs += cfgs[skip:]
            outputs = self._generate(prompts, configs, scored=True)
            if attempt == 1 and self.drafts():
                outputs = self._redraft(pending, outputs, cfgs)
            retry, start = [], 0
            for work in pending:
                kept = [work.kept] if work.kept is not None else []
                candidates = kept + outputs[start : start + n - len(kept)]
                start, work.kept = start + n - len(kept), None
                final = self._attempt(work, attempt, candidates)
                if attempt < self.max_attempts and (not final or self._unsure(work, attempt)):
                    retry.append(work)
            pending = retry
        return answers

    def _unsure(self, work: _Work, attempt: int) -> bool:
        """Whether a first answer that ran is less likely than ``generation.vote_below``
        allows; it is then kept, and the next attempt's candidates are drawn to vote with it
        (as after a failure, with the answer itself in place of a repair)."""
        below, answer = self.generation.vote_below, work.answer
        if attempt != 1 or below is None or not answer.ok or answer.confidence is None:
            return False
        if answer.confidence >= below:
            return False
        work.kept = _Output(answer.raw_output, None, answer.confidence)
        return True

    def _prompts(self, pending: list[_Work], n: int) -> list[str]:
        """``n`` prompts per answer in progress: the conversation so far, then fresh ones."""
        prompts = []
        for w in pending:
            head = self.backend.render(w.messages)
            fresh = head if w.messages is w.first else self.backend.render(w.first)
            prompts += [head, *[fresh] * (n - 1)]
        return prompts

    def _redraft(
        self,
        pending: list[_Work],
        outputs: list[_Output],
        cfgs: list[GenerationConfig],
    ) -> list[_Output]:
        """DAIL-SQL's second stage: each first answer is a draft whose SQL skeleton chooses
        the pool examples again; where they changed, the question is answered again with
        them (these outputs replace the draft's)."""
        n, again = len(cfgs), []
        for k, work in enumerate(pending):
            first = outputs[k * n]
            draft = extract_sql(first.text) if first.failure is None and first.text else None
            if not work.retrieved or not draft:
                continue
            question = work.asked
            query = retrieval_query(question, work.history)
            ctx = self.context(query, work.db, work.schema, draft=draft)
            messages, sources = self.prompter().from_context(
                question, work.schema, ctx, work.history, work.way
            )
            if messages != work.first:
                work.messages = work.first = messages
                work.answer.sources = sources
                again.append(k)
        if not again:
            return outputs
        prompts = self._prompts([pending[k] for k in again], n)
        fresh = self._generate(prompts, cfgs * len(again), scored=True)
        outputs = list(outputs)
        for j, k in enumerate(again):
            outputs[k * n : (k + 1) * n] = fresh[j * n : (j + 1) * n]
        return outputs

    def _start(
        self,
        request: Request,
        schemas: dict[DbRef | Database, tuple[Database, Schema] | str],
        way: str = "previous",
    ) -> _Work | Answer:
        """The first prompt for a request, or its final answer when it cannot be asked.
        ``schemas``: the batch's databases, each opened and read once; ``way``: how its
        conversation is shown (engine.conversation)."""
        question = (request.question or "").strip()
        if not question:
            return Answer(question=question, error="Please type a question.")
        read = self._schema(request.db_path, schemas)
        if isinstance(read, str):
            return Answer(question=question, error=read)
        db, schema = read
        scope = None
        limits = way == "scope" or self.followup.scope
        if limits and request.history and refers_to_rows(question):
            scope = previous_entity(request.history[-1][1], schema)
        # asked alone, "them" would mean nothing: the model is told what the rows are
        asked = name_rows(question, scope.table) if way == "scope" and scope else question
        messages, sources = self.prompter().messages(
            asked, db, schema, request.history, request.context, way
        )
        answer = Answer(question=question, sources=sources)
        retrieved = request.context is None
        history = request.history
        each = scope is not None and EACH.search(question) is not None
        whole = scope is not None and not restricts(question, request.history[-1][1], schema)
        return _Work(
            answer,
            db,
            schema,
            messages,
            history,
            retrieved,
            way,
            scope,
            asked=asked,
            each=each,
            whole=whole,
        )

    @staticmethod
    def _schema(ref: DbRef | Database, schemas: dict) -> tuple[Database, Schema] | str:
        """The database and schema of ``ref``, read once per batch (``schemas``), or why
        it cannot be asked (one line)."""
        if ref not in schemas:
            try:
                db = open_database(ref)
                schema = db.read_schema()
                schemas[ref] = (db, schema) if schema.tables else f"{db.label} has no tables."
            except DatabaseError as err:
                schemas[ref] = str(err)
        return schemas[ref]

    def _composed(self, request: Request, schemas: dict) -> Answer:
        """A follow-up whose SQL the engine wrote itself (engine.compose; it is the
        request's question here): checked and run as a model's answer is, no model asked."""
        db, schema = self._schema(request.db_path, schemas)  # read when it was composed
        answer = Answer(question=request.question, way="compose", raw_output=request.question)
        answer.sql, answer.error, result = self.check_and_run(request.question, db, schema)
        if result is not None:
            answer.columns, answer.rows = result.columns, [list(r) for r in result.rows]
            answer.truncated, answer.votes = result.truncated, 1
            answer.explanation = explain(answer.sql or "", schema.dialect)
        return answer

    def _attempt(self, work: _Work, attempt: int, candidates: list[_Output]) -> bool:
        """Check and run one attempt's candidate answers; True when the answer is final.

        Candidates that fail checking or execution drop out; among the others, groups that
        return the same rows are chosen between by ``generation.selector``
        (engine.selector: by default the biggest group, ties to the earlier candidate, the
        greedy one first). When all fail, the first one's error goes back to the model for
        the next attempt.
        """
        answer = work.answer
        answer.attempts, answer.candidates = attempt, len(candidates)
        if attempt == 1:
            answer.greedy_confidence = candidates[0].logprob
        if all(c.failure is not None for c in candidates):
            # the model itself failed: asking it again will not help
            answer.raw_output, answer.sql, answer.error = "", None, candidates[0].failure
            answer.confidence = None
            return True
        runs = []  # (candidate index, raw, sql, error, result) of each generated candidate
        checked: dict[str, tuple] = {}  # candidates often repeat each other word for word
        for i, (raw, failure, _) in enumerate(candidates):
            if failure is not None:
                continue
            if raw not in checked:
                checked[raw] = self.check_and_run(
                    raw,
                    work.db,
                    work.schema,
                    work.previous,
                    work.scope,
                    work.way == "scope",
                    work.within,
                    work.each,
                    work.whole,
                )
            runs.append((i, raw, *checked[raw]))
        valid = [r for r in runs if r[4] is not None and r[3] is None]
        if valid:
            votes: dict[tuple, list[tuple]] = {}
            for run in valid:
                votes.setdefault(rows_key(run[4].rows), []).append(run)
            groups = list(votes.values())
            scores = [c.logprob for c in candidates]
            chosen = choose([[r[0] for r in g] for g in groups], scores, self.generation.selector)
            group = groups[chosen]
            i, answer.raw_output, answer.sql, _, result = group[0]
            answer.confidence = candidates[i].logprob
            answer.columns, answer.rows = result.columns, [list(r) for r in result.rows]
            answer.truncated, answer.error, answer.votes = result.truncated, None, len(group)
            answer.explanation = explain(answer.sql or "", work.schema.dialect)
            return True
        i, raw, sql, error, _ = runs[0]
        answer.raw_output, answer.sql, answer.error, answer.votes = raw, sql, error, 0
        answer.confidence = candidates[i].logprob
        log.info("attempt %d failed: %s", attempt, error)
        work.messages = build_repair_messages(
            work.messages, sql or raw.strip()[:500], error or "", self.backend.prompt_format
        )
        return False

    def _generate(
        self, prompts: list[str], cfgs: list[GenerationConfig], scored: bool = False
    ) -> list[_Output]:
        """One output per prompt; a batch that raises is retried one prompt at a time.
        ``scored``: with the answers' mean token log-probabilities, where the backend can
        tell (answers are, so that each records its confidence; the rewrite is not)."""
        try:
            if scored:
                return [
                    _Output(s.text, None, s.logprob)
                    for s in generate_scored(self.backend, prompts, cfgs)
                ]
            return [_Output(text) for text in self.backend.generate(prompts, cfgs)]
        except Exception as err:  # a model error must not lose the other answers
            if len(prompts) == 1:
                log.debug("generation failed", exc_info=True)
                return [_Output("", f"Generation failed: {_one_line(err)}")]
            log.warning("batch generation failed (%s); retrying one by one", _one_line(err))
        return [self._generate([p], [c], scored)[0] for p, c in zip(prompts, cfgs, strict=True)]

    def prime(self, db_path: DbRef | Database, retriever: Retriever | None = None) -> int:
        """Get a database ready for quick first answers; returns the prompt tokens now cached.

        Indexes it when the retriever does that on first use, and lets a backend with a prompt
        cache (llama.cpp's ``prefill``) evaluate a prompt for it: every later question on the
        database reuses what they share (system prompt, schema, sample values). ``retriever``:
        retrieve from that one instead of the engine's (a signed-in user's own index; ignored
        when the engine retrieves nothing). Raises ``DatabaseError`` for an unreadable database.
        """
        db = open_database(db_path)
        schema = db.read_schema()
        if not schema.tables:
            return 0
        context = self.context(PRIMING_QUESTION, db, schema, retriever)
        messages, _ = self.build_messages(PRIMING_QUESTION, db, schema, context=context)
        prefill = getattr(self.backend, "prefill", None)
        return prefill(self.backend.render(messages)) if prefill is not None else 0

    def check_and_run(
        self,
        raw_output: str,
        db: Database,
        schema: Schema,
        previous: str | None = None,
        scope: Entity | None = None,
        about_rows: bool = False,
        within: str | None = None,
        each: bool = False,
        whole: bool = False,
    ) -> tuple[str | None, str | None, QueryResult | None]:
        """Model text -> (sql, error, result); exactly one of error/result is set.
        ``previous``: the conversation's last SQL, put in front of an answer that selects
        from its rows (engine.followup); ``scope``: the previous rows the answer is limited
        to (engine.scope); ``about_rows``: an answer that does not read them is an error
        (the scope way, which asks about them by name); ``within``: the previous SQL, for
        a follow-up asking for some of its rows: the answer becomes that SQL kept to the
        rows it gives (engine.compose.within_previous), where that runs; ``each``: it asks
        something of each of the previous rows (engine.scope.per_row); ``whole``: it asks
        about all of them, none left out for want of a joined row (engine.scope.restrict)."""
        sql = None
        try:
            sql = extract_sql(raw_output)
            if sql is None:
                return None, "The model's answer contains no SQL query.", None
            sql = attach_previous(sql, previous, schema.dialect)
            alone = sql
            if scope is not None:
                limited = restrict(sql, scope, schema, each, whole)
                if limited is None and about_rows and (why := misses(sql, scope, schema)):
                    return sql, why, None
                sql = limited or sql
            if within is not None and (kept := self._within(alone, sql, within, db, schema)):
                return kept
            check = validate_sql(sql, schema)
        except Exception as err:  # a parser bug must not lose the question (or the batch)
            log.warning("checking failed: %s", _one_line(err))
            return sql, f"The SQL could not be checked: {_one_line(err)}", None
        if not check.ok:
            return sql, check.message, None
        if self.relink_literals:
            sql = self._relinked(sql, db, schema)
        result = db.run_readonly(sql, timeout_s=self.timeout_s, max_rows=self.max_rows)
        return sql, result.error, (result if result.ok else None)

    def _relinked(self, sql: str, db: Database, schema: Schema) -> str:
        """``sql`` with a text compared to a column that never holds it moved to the one
        column of that table that does (engine.literals), where the result checks."""
        try:
            moved = relink_literals(sql, schema, schema.dialect, _lookup(db, timeout_s=1.0))
        except Exception as err:  # a parser bug must not lose the answer
            log.warning("relinking literals failed: %s", _one_line(err))
            return sql
        return moved if moved is not None and validate_sql(moved, schema).ok else sql

    def _within(
        self, alone: str, limited: str, previous: str, db: Database, schema: Schema
    ) -> tuple[str, None, QueryResult] | None:
        """(sql, None, result) of the previous SQL kept to the rows an answer gives, or None
        when that cannot be written, checked or run (the answer then stands as it is).
        ``alone``: the answer as written; ``limited``: kept to the previous rows."""
        kept = within_previous(alone, previous, schema, schema.dialect, limited)
        if kept is None or not validate_sql(kept, schema).ok:
            return None
        result = db.run_readonly(kept, timeout_s=self.timeout_s, max_rows=self.max_rows)
        return (kept, None, result) if result.ok else None


def _lookup(db: Database, timeout_s: float) -> Callable[[str], list[tuple]]:
    """A probe of ``db`` (engine.compose, engine.literals): its first two rows, none when it
    fails."""

    def lookup(sql: str) -> list[tuple]:
        result = db.run_readonly(sql, timeout_s=timeout_s, max_rows=2)
        return result.rows if result.ok else []

    return lookup


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}"[:300]
