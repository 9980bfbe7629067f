"""Text-to-SQL metrics as plain functions ``(prediction, gold, **context) -> float``.

:data:`METRICS` maps a name to each function; adding a metric is a function and a line.
String metrics compare SQL text; :func:`execution_match` runs both queries and compares
their results with Spider's rules (Yu et al., EMNLP 2018; the test-suite evaluation of
Zhong et al., 2020):

- results are bags of rows: duplicates count, row order does not ...
- ... unless the gold query's outermost SELECT has ORDER BY, then row order must match;
- column order is free: some permutation of the predicted columns must match the gold ones;
- two empty results match (as in Spider, whatever their column counts);
- 2 and 2.0 are equal and floats are compared to 10 significant digits, so AVG(x) and
  SUM(x) / COUNT(x) agree; NULL equals NULL; '1' (text) and 1 (number) differ;
- a prediction that fails, is refused or times out scores 0; a gold query that fails raises
  :class:`GoldSQLError` so the caller can report and exclude the example.

:func:`hardness` is Spider's easy/medium/hard/extra rule computed from sqlglot's tree.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from engine.db import Database, DbRef, QueryResult, run_readonly
from engine.sql_check import validate_sql

Metric = Callable[..., float]
MAX_COLUMN_PERMUTATIONS = 10_000


class GoldSQLError(Exception):
    """The gold query does not run on the example's database."""


# --- string metrics -----------------------------------------------------------------------


def dequote_string_operands(tree: Any) -> None:
    """``WHERE city = "Paris"``: a double-quoted right operand is a string, as SQLite reads it."""
    predicates = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.Glob)
    candidates: list[Any] = [n.expression for n in tree.find_all(*predicates)]
    candidates += [e for n in tree.find_all(exp.In) for e in n.expressions]
    for node in candidates:
        if isinstance(node, exp.Column) and not node.table and node.this.quoted:
            node.replace(exp.Literal.string(node.name))


@functools.lru_cache(maxsize=4096)
def normalize_sql(sql: str) -> str:
    """Canonical text for exact match: sqlglot's rendering with upper-case keywords and
    functions, single spaces, no trailing semicolon, unquoted lower-case identifiers,
    single-quoted strings, no explicit ASC, JOIN for INNER JOIN. SQL that sqlglot cannot parse falls back to collapsed whitespace in
    lower case."""
    text = (sql or "").strip().rstrip(";").strip()
    try:
        tree = sqlglot.parse_one(text, read="sqlite")
    except SqlglotError:
        tree = None
    if tree is None:
        return " ".join(text.split()).lower()
    dequote_string_operands(tree)
    for ordered in tree.find_all(exp.Ordered):  # ASC is the default
        if not ordered.args.get("desc"):
            ordered.set("desc", None)
    for join in tree.find_all(exp.Join):  # JOIN is INNER JOIN
        if str(join.args.get("kind") or "").upper() == "INNER":
            join.set("kind", None)
    for ident in tree.find_all(exp.Identifier):
        ident.set("this", ident.name.lower())
        ident.set("quoted", False)
    return tree.sql(dialect="sqlite", normalize_functions="upper")


def exact_match(prediction: str, gold: str, **_: Any) -> float:
    """1.0 when both queries normalise to the same text (see :func:`normalize_sql`)."""
    if not prediction:
        return 0.0
    return float(normalize_sql(prediction) == normalize_sql(gold))


def raw_exact_match(prediction: str, gold: str, **_: Any) -> float:
    """1.0 when the texts are identical after stripping surrounding whitespace."""
    return float((prediction or "").strip() == gold.strip())


def bleu(prediction: str, gold: str, **_: Any) -> float:
    """Sentence BLEU (sacrebleu, 13a tokens), scaled to 0..1."""
    import sacrebleu  # deferred: sacrebleu takes ~250 ms to import

    return min(1.0, sacrebleu.sentence_bleu(prediction or "", [gold]).score / 100.0)


def corpus_bleu(predictions: Sequence[str], golds: Sequence[str]) -> float:
    """Corpus BLEU (what the seed reported as BLEU), scaled to 0..1."""
    import sacrebleu  # deferred: sacrebleu takes ~250 ms to import

    if not predictions:
        return 0.0
    score = sacrebleu.corpus_bleu([p or "" for p in predictions], [list(golds)]).score
    return min(1.0, score / 100.0)


@functools.lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer  # deferred: rouge_score takes seconds (nltk)

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)


def _rouge(kind: str) -> Metric:
    def metric(prediction: str, gold: str, **_: Any) -> float:
        return _rouge_scorer().score(gold, prediction or "")[kind].fmeasure

    metric.__name__ = kind
    metric.__doc__ = f"{kind.upper()} F1 (rouge-score, default tokenizer, no stemming)."
    return metric


rouge1, rouge2, rougeL = _rouge("rouge1"), _rouge("rouge2"), _rouge("rougeL")


# --- execution ----------------------------------------------------------------------------


def _norm_value(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if value.is_integer():
            return int(value)
        return float(f"{value:.10g}")
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return value


def _column_permutations(gold: list[tuple], pred: list[tuple], ncols: int) -> Iterator[tuple]:
    """Column orders of ``pred`` worth trying: column i may take pred column j only when the
    two columns hold the same bag of values."""
    gold_cols = [Counter(r[i] for r in gold) for i in range(ncols)]
    pred_cols = [Counter(r[j] for r in pred) for j in range(ncols)]
    options = [[j for j in range(ncols) if pred_cols[j] == g] for g in gold_cols]
    tried = 0
    for perm in itertools.product(*options):
        if len(set(perm)) != ncols:
            continue
        tried += 1
        if tried > MAX_COLUMN_PERMUTATIONS:
            return
        yield perm


def results_match(
    gold_rows: Sequence[Sequence], pred_rows: Sequence[Sequence], order_matters: bool = False
) -> bool:
    """Spider's result equivalence (see the module docstring)."""
    gold = [tuple(_norm_value(v) for v in r) for r in gold_rows]
    pred = [tuple(_norm_value(v) for v in r) for r in pred_rows]
    if not gold and not pred:
        return True
    if len(gold) != len(pred):
        return False
    ncols = len(gold[0])
    if any(len(r) != ncols for r in pred):
        return False
    if not order_matters and Counter(map(frozenset, map(Counter, gold))) != Counter(
        map(frozenset, map(Counter, pred))
    ):
        return False  # quick reject: rows differ whatever the column order
    gold_bag = Counter(gold)
    for perm in _column_permutations(gold, pred, ncols):
        permuted = [tuple(r[i] for i in perm) for r in pred]
        if permuted == gold if order_matters else Counter(permuted) == gold_bag:
            return True
    return False


@functools.lru_cache(maxsize=4096)
def has_order_by(sql: str) -> bool:
    """Whether the outermost query sorts its rows (an ORDER BY inside a subquery does not)."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except SqlglotError:
        return bool(re.search(r"\border\s+by\b", sql, re.IGNORECASE))
    return tree is not None and tree.args.get("order") is not None


def run_query(
    db_path: DbRef | Database, sql: str, timeout_s: float = 5.0, max_rows: int = 100_000
) -> QueryResult:
    """Read-only execution with a timeout (a hang costs at most ``timeout_s``)."""
    return run_readonly(db_path, sql, timeout_s=timeout_s, max_rows=max_rows)


def execution_match(
    prediction: str | None,
    gold: str,
    *,
    db_path: DbRef | Database,
    timeout_s: float = 5.0,
    max_rows: int = 100_000,
    gold_result: QueryResult | None = None,
    pred_result: QueryResult | None = None,
    **_: Any,
) -> float:
    """1.0 when the prediction returns the gold query's result on ``db_path`` (Spider rules).

    Pass ``gold_result``/``pred_result`` to reuse results already computed. Raises
    :class:`GoldSQLError` when the gold query fails.
    """
    gold_result = gold_result or run_query(db_path, gold, timeout_s, max_rows)
    if not gold_result.ok:
        raise GoldSQLError(gold_result.error or "gold query failed")
    if not prediction:
        return 0.0
    pred_result = pred_result or run_query(db_path, prediction, timeout_s, max_rows)
    if not pred_result.ok:
        return 0.0
    return float(results_match(gold_result.rows, pred_result.rows, has_order_by(gold)))


def valid_sql(prediction: str | None, gold: str, *, schema: Any, **_: Any) -> float:
    """1.0 when the prediction parses and names only tables/columns of ``schema``."""
    return float(bool(prediction) and validate_sql(prediction, schema).ok)


METRICS: dict[str, Metric] = {
    "exact_match": exact_match,
    "raw_exact_match": raw_exact_match,
    "bleu": bleu,
    "rouge1": rouge1,
    "rouge2": rouge2,
    "rougeL": rougeL,
    "execution_accuracy": execution_match,
    "valid_sql": valid_sql,
}
STRING_METRICS = ("exact_match", "raw_exact_match", "bleu", "rouge1", "rouge2", "rougeL")


# --- Spider hardness ----------------------------------------------------------------------

HARDNESS_LEVELS = ("easy", "medium", "hard", "extra")


def _own_nodes(node: Any, *types: type) -> list[Any]:
    """Nodes of ``types`` under ``node`` that belong to it, not to a nested query."""

    def prune(n: Any) -> bool:
        return n is not node and isinstance(n, exp.Query | exp.Subquery)

    return [n for n in node.walk(prune=prune) if isinstance(n, types) and n is not node]


def _conditions(node: Any) -> list[Any]:
    """``a AND (b OR c)`` -> [a, b, c]."""
    if node is None:
        return []
    if isinstance(node, exp.Where | exp.Having | exp.Paren):
        return _conditions(node.this)
    if isinstance(node, exp.Connector):
        return _conditions(node.this) + _conditions(node.expression)
    return [node]


def _components(select: Any) -> tuple[int, int, int]:
    """Spider's (component1, component2, others) counts for one SELECT."""
    joins = select.args.get("joins") or []
    where, having = select.args.get("where"), select.args.get("having")
    group = select.args.get("group")
    conds = [j.args.get("on") for j in joins if j.args.get("on") is not None]
    conds += [c for c in (where, having) if c is not None]
    comp1 = sum(bool(select.args.get(k)) for k in ("where", "group", "order", "limit"))
    comp1 += len(joins)
    comp1 += sum(len(_own_nodes(c, exp.Or)) + isinstance(c, exp.Or) for c in conds)
    comp1 += sum(len(_own_nodes(c, exp.Like)) + isinstance(c, exp.Like) for c in conds)
    comp2 = sum(len(_own_nodes(c, exp.Query, exp.Subquery)) for c in conds)
    aggs = len(_own_nodes(select, exp.AggFunc)) - sum(
        len(_own_nodes(j, exp.AggFunc)) for j in joins
    )
    others = int(aggs > 1) + int(len(select.expressions) > 1)
    others += int(len(_conditions(where)) > 1)
    others += int(group is not None and len(group.expressions) > 1)
    return comp1, comp2, others


def hardness(sql: str) -> str:
    """Spider's difficulty level (easy/medium/hard/extra) of a query; "unknown" if unparsable."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except SqlglotError:
        return "unknown"
    set_ops = 0
    while isinstance(tree, exp.SetOperation):  # UNION / INTERSECT / EXCEPT: one nested query
        set_ops += 1
        tree = tree.this
    if not isinstance(tree, exp.Select):
        return "unknown"
    c1, c2, others = _components(tree)
    c2 += set_ops
    if c1 <= 1 and others == 0 and c2 == 0:
        return "easy"
    if (others <= 2 and c1 <= 1 and c2 == 0) or (c1 <= 2 and others < 2 and c2 == 0):
        return "medium"
    if (
        (others > 2 and c1 <= 2 and c2 == 0)
        or (2 < c1 <= 3 and others <= 2 and c2 == 0)
        or (c1 <= 1 and others == 0 and c2 <= 1)
    ):
        return "hard"
    return "extra"
