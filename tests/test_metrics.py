"""Metric functions against hand-computed cases, including Spider's tricky ones."""

import sqlite3

import pytest

from engine.db import read_schema
from training.eval_dbs import SyntheticDatabases, build_database, planted_values
from training.metrics import (
    METRICS,
    GoldSQLError,
    bleu,
    corpus_bleu,
    exact_match,
    execution_match,
    hardness,
    has_order_by,
    normalize_sql,
    raw_exact_match,
    results_match,
    rouge1,
    rouge2,
    rougeL,
    valid_sql,
)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "m.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, age INTEGER, city TEXT, score REAL);"
        "INSERT INTO people VALUES (1,'Ann',30,'Paris',1.5),(2,'Bo',25,'Rome',NULL),"
        "(3,'Cy',30,'Paris',2.5),(4,'Di',41,NULL,3.0);"
    )
    con.commit()
    con.close()
    return path


# --- string metrics -----------------------------------------------------------------------


def test_exact_match_normalises_whitespace_case_quotes_and_semicolon():
    gold = 'SELECT name FROM people WHERE city = "Paris"'
    assert exact_match("select  NAME\nfrom People where city = 'Paris';", gold) == 1.0
    assert exact_match('SELECT "name" FROM people WHERE city = "Paris"', gold) == 1.0
    assert exact_match("SELECT count(*) FROM t", "SELECT COUNT(*) FROM t ;") == 1.0
    assert exact_match("SELECT a FROM t WHERE x != 1", "SELECT a FROM t WHERE x <> 1") == 1.0
    assert exact_match("SELECT a FROM t ORDER BY a ASC", "SELECT a FROM t ORDER BY a") == 1.0
    assert exact_match("SELECT a FROM t ORDER BY a DESC", "SELECT a FROM t ORDER BY a") == 0.0
    assert exact_match(
        "SELECT a FROM t INNER JOIN u ON t.i = u.i", "SELECT a FROM t JOIN u ON t.i = u.i"
    )
    # string values keep their case: 'paris' is another value
    assert exact_match("SELECT name FROM people WHERE city = 'paris'", gold) == 0.0
    assert exact_match("SELECT age FROM people", "SELECT name FROM people") == 0.0
    assert exact_match("", gold) == 0.0


def test_raw_exact_match_is_strict():
    assert raw_exact_match(" SELECT a FROM t ", "SELECT a FROM t") == 1.0
    assert raw_exact_match("select a from t", "SELECT a FROM t") == 0.0
    assert raw_exact_match("SELECT a FROM t;", "SELECT a FROM t") == 0.0


def test_normalize_falls_back_for_unparsable_sql():
    assert normalize_sql("SELEC  x FROM") == "selec x from"


def test_bleu_and_rouge_hand_computed():
    assert bleu("SELECT a FROM t", "SELECT a FROM t") == pytest.approx(1.0)
    assert bleu("", "SELECT a FROM t") == 0.0
    assert corpus_bleu(["SELECT a FROM t"], ["SELECT a FROM t"]) == pytest.approx(1.0)
    # rouge-score tokens: select, a, from, t vs select, b, from, t -> 3 of 4 unigrams shared
    assert rouge1("SELECT a FROM t", "SELECT b FROM t") == pytest.approx(0.75)
    # bigrams: (select a)(a from)(from t) vs (select b)(b from)(from t): 1 of 3
    assert rouge2("SELECT a FROM t", "SELECT b FROM t") == pytest.approx(1 / 3)
    # LCS select-from-t = 3 of 4
    assert rougeL("SELECT a FROM t", "SELECT b FROM t") == pytest.approx(0.75)


def test_metric_table_calls_uniformly(db):
    schema = read_schema(db)
    ctx = {"db_path": db, "schema": schema}
    sql = "SELECT name FROM people"
    for name, fn in METRICS.items():
        assert fn(sql, sql, **ctx) == pytest.approx(1.0), name


# --- execution: result comparison ---------------------------------------------------------


def test_bag_semantics_and_order():
    assert results_match([(1,), (2,)], [(2,), (1,)])
    assert not results_match([(1,), (2,)], [(2,), (1,)], order_matters=True)
    assert results_match([(1,), (2,)], [(1,), (2,)], order_matters=True)


def test_duplicate_rows_count():
    assert not results_match([(1,), (1,), (2,)], [(1,), (2,), (2,)])
    assert not results_match([(1,), (1,)], [(1,)])
    assert results_match([(1,), (1,), (2,)], [(2,), (1,), (1,)])


def test_column_order_is_free():
    gold = [("Ann", 30), ("Bo", 25)]
    assert results_match(gold, [(30, "Ann"), (25, "Bo")])
    assert results_match(gold, [(25, "Bo"), (30, "Ann")])
    assert not results_match(gold, [(25, "Ann"), (30, "Bo")])  # values re-paired
    assert not results_match(gold, [("Ann",), ("Bo",)])  # fewer columns
    # same bag per column but different row pairing under every permutation
    assert not results_match([(1, 2), (2, 1)], [(1, 1), (2, 2)])


def test_nulls_floats_and_types():
    assert results_match([(None,), (1,)], [(1,), (None,)])
    assert not results_match([(None,)], [(0,)])
    assert results_match([(2,)], [(2.0,)])  # SUM over REAL vs INTEGER
    assert results_match([(1 / 3,)], [(0.3333333333333333,)])
    assert results_match([(10 / 3,)], [(3.3333333333333335,)])  # AVG vs SUM/COUNT rounding
    assert not results_match([(0.333,)], [(1 / 3,)])
    assert not results_match([("1",)], [(1,)])  # text is not a number


def test_empty_results_match_as_in_spider():
    assert results_match([], [])
    assert not results_match([(1,)], [])


def test_order_by_only_at_the_top_level():
    assert has_order_by("SELECT a FROM t ORDER BY a")
    assert has_order_by("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1")
    assert not has_order_by("SELECT a FROM (SELECT a FROM t ORDER BY a LIMIT 3)")
    assert not has_order_by("SELECT a FROM t")


# --- execution on a database --------------------------------------------------------------


def test_execution_match_spider_rules(db):
    def em(pred, gold):
        return execution_match(pred, gold, db_path=db, timeout_s=2)

    gold = "SELECT name, age FROM people WHERE city = 'Paris'"
    assert em('SELECT age, name FROM people WHERE city = "Paris"', gold) == 1.0
    assert em("SELECT name, age FROM people WHERE age = 30", gold) == 1.0  # same rows here
    assert em("SELECT name FROM people WHERE city = 'Paris'", gold) == 0.0
    ordered = "SELECT name FROM people ORDER BY age DESC, name"
    assert em("SELECT name FROM people ORDER BY age DESC, name", ordered) == 1.0
    assert em("SELECT name FROM people ORDER BY age, name", ordered) == 0.0
    assert em("SELECT name FROM people ORDER BY age, name", "SELECT name FROM people") == 1.0
    # duplicates: DISTINCT changes the bag
    assert em("SELECT DISTINCT age FROM people", "SELECT age FROM people") == 0.0
    # AVG vs SUM/COUNT, and NULLs
    assert em("SELECT sum(age) * 1.0 / count(age) FROM people", "SELECT avg(age) FROM people")
    assert em("SELECT city FROM people WHERE id > 2", "SELECT city FROM people WHERE id >= 3")


def test_failed_refused_and_hanging_predictions_score_zero(db):
    gold = "SELECT count(*) FROM people"
    for pred in (
        None,
        "SELECT nope FROM people",
        "DELETE FROM people",
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r",
    ):
        assert execution_match(pred, gold, db_path=db, timeout_s=0.5) == 0.0


def test_failing_gold_raises(db):
    with pytest.raises(GoldSQLError, match="no such"):
        execution_match("SELECT 1", "SELECT x FROM missing", db_path=db)


def test_valid_sql_checks_names(db):
    schema = read_schema(db)
    assert valid_sql("SELECT name FROM people", "", schema=schema) == 1.0
    assert valid_sql("SELECT nickname FROM people", "", schema=schema) == 0.0
    assert valid_sql("SELECT name FROM persons", "", schema=schema) == 0.0
    assert valid_sql("SELECT FROM WHERE", "", schema=schema) == 0.0
    assert valid_sql(None, "", schema=schema) == 0.0


# --- hardness -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "level"),
    [
        ("SELECT count(*) FROM head WHERE age > 56", "easy"),
        ("SELECT name, born_state, age FROM head ORDER BY age", "medium"),
        ("SELECT T1.name FROM a AS T1 JOIN b AS T2 ON T1.id = T2.id WHERE T2.x = 'y'", "medium"),
        ("SELECT name FROM a WHERE id IN (SELECT id FROM b)", "hard"),
        ("SELECT name FROM a UNION SELECT name FROM b", "hard"),
        ("SELECT a FROM t JOIN u ON t.id = u.id WHERE x = 1 ORDER BY a", "hard"),  # 3 parts
        # WHERE + GROUP BY, and 2 "others" (two columns, two conditions): no rule up to hard
        ("SELECT a, count(*) FROM t WHERE x = 1 AND y = 2 GROUP BY a", "extra"),
        ("SELECT a FROM t JOIN u ON t.id = u.id WHERE x = 1 OR y LIKE '%z%'", "extra"),
        (
            "SELECT name FROM a WHERE id NOT IN (SELECT id FROM b) AND x > (SELECT avg(x) FROM a)",
            "extra",
        ),
        ("NOT SQL AT ALL (", "unknown"),
    ],
)
def test_spider_hardness(sql, level):
    assert hardness(sql) == level


# --- databases generated from DDL ---------------------------------------------------------


def test_planted_values_follow_the_filters():
    got = planted_values(
        "SELECT a FROM t WHERE b = \"x\" AND c > 56 AND 5 < d AND e LIKE '%son%' AND f < '0'"
    )
    assert got == {"b": ["x"], "c": [57], "d": [6], "e": ["son"], "f": [-1]}


def test_synthetic_database_runs_gold_and_is_deterministic(tmp_path):
    ddl = (
        'CREATE TABLE table_1 (\n    "School" text,\n    "City" text,\n    "Enrollment" real\n)\n\n'
        "CREATE TABLE other (id number, name VARCHAR)"
    )
    gold = 'SELECT "School" FROM table_1 WHERE "City" = \'brookville\' AND "Enrollment" > 100'
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    build_database(a, ddl, gold, rows=12, seed=0)
    build_database(b, ddl, gold, rows=12, seed=0)

    def dump(p):
        con = sqlite3.connect(p)
        try:
            return [con.execute(f"SELECT * FROM {t}").fetchall() for t in ("table_1", "other")]
        finally:
            con.close()

    assert dump(a) == dump(b)
    assert len(dump(a)[0]) == 12 and len(dump(a)[1]) == 12
    assert execution_match(gold, gold, db_path=a) == 1.0
    con = sqlite3.connect(a)
    assert con.execute(gold).fetchall()  # the planted row makes the gold query non-empty
    con.close()
    wrong = 'SELECT "School" FROM table_1 WHERE "City" = \'Brookville\' AND "Enrollment" > 100'
    assert execution_match(wrong, gold, db_path=a) == 0.0


def test_synthetic_databases_report_bad_ddl():
    with SyntheticDatabases() as dbs:
        path, error = dbs.path_for("this is not DDL", "SELECT 1")
        assert path is None and "No database" in error
        path, error = dbs.path_for("CREATE TABLE t (a int)", "SELECT a FROM t")
        assert path is not None and path.is_file() and error is None
    assert not path.exists()  # the temporary folder is gone after close()
