import pytest

from engine.schema import Column, ForeignKey, Schema, Table
from engine.sql_check import extract_sql, is_statement_complete, validate_sql

SCHEMA = Schema(
    tables={
        "customers": Table(
            "customers",
            [Column("id", "INTEGER", True), Column("name", "TEXT"), Column("country", "TEXT")],
        ),
        "orders": Table(
            "orders",
            [
                Column("id", "INTEGER", True),
                Column("customer_id", "INTEGER"),
                Column("total", "REAL"),
            ],
            [ForeignKey("customer_id", "customers", "id")],
        ),
    }
)


@pytest.mark.parametrize(
    ("text", "sql"),
    [
        ("SELECT count(*) FROM customers;", "SELECT count(*) FROM customers"),
        ("```sql\nSELECT name FROM customers;\n```", "SELECT name FROM customers"),
        ("```\nSELECT 1\n```\nThis returns one.", "SELECT 1"),
        ("Sure! Here it is: SELECT a FROM b; SELECT 2;", "SELECT a FROM b"),
        ("SELECT ';' AS s FROM t; DROP TABLE t", "SELECT ';' AS s FROM t"),
        ("select x from y\n\nThis query selects x.", "select x from y"),
        ("WITH c AS (SELECT 1) SELECT * FROM c;", "WITH c AS (SELECT 1) SELECT * FROM c"),
        ("SELECT 1 /* ; */ ;", "SELECT 1 /* ; */"),
        ("SELECT name\nFROM customers\nThis lists every name.", "SELECT name\nFROM customers"),
        ("I don't know.", None),
        ("", None),
    ],
)
def test_extract_sql(text, sql):
    assert extract_sql(text) == sql


def test_statement_complete_only_after_semicolon_or_fence():
    assert not is_statement_complete("SELECT name FROM customers WHERE x = ';")
    assert is_statement_complete("SELECT name FROM customers;")
    assert is_statement_complete("```sql\nSELECT 1\n```")
    assert not is_statement_complete("```sql\nSELECT 1")
    assert is_statement_complete("SELECT 1\n\nCREATE TABLE")
    assert not is_statement_complete("SELECT a,\n  b")
    # "with" in prose is not SQL: no early stop before the fenced query is written
    prose = "To list departments with budgets, you can use the following SQL query:\n\n```"
    assert not is_statement_complete(prose)
    assert not is_statement_complete(prose + "sql\nSELECT name\n\nFROM t")
    assert (
        extract_sql(prose + "sql\nSELECT name FROM departments\n```")
        == "SELECT name FROM departments"
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM customers",
        "SELECT c.name, sum(o.total) AS t FROM customers AS c JOIN orders AS o ON o.customer_id = c.id GROUP BY c.name ORDER BY t DESC",
        "WITH big AS (SELECT customer_id FROM orders WHERE total > 10) SELECT count(*) FROM big",
        "SELECT name FROM customers WHERE id IN (SELECT customer_id FROM orders)",
        'SELECT name FROM customers WHERE country = "France"',  # SQLite reads it as a string
        "SELECT Name FROM Customers",  # SQLite names are case-insensitive
    ],
)
def test_valid_sql(sql):
    assert validate_sql(sql, SCHEMA).ok


def test_unknown_table_is_named():
    v = validate_sql("SELECT * FROM clients", SCHEMA)
    assert not v.ok and v.unknown_tables == ["clients"] and "clients" in v.message


def test_unknown_column_is_named():
    v = validate_sql("SELECT c.email FROM customers AS c", SCHEMA)
    assert not v.ok and v.unknown_columns == ["email"] and "email" in v.message


def test_writes_and_garbage_are_rejected():
    assert "Only SELECT" in validate_sql("DELETE FROM customers", SCHEMA).message
    assert "does not parse" in validate_sql("SELEC name FRM", SCHEMA).message
    assert not validate_sql("SELECT 1; SELECT 2", SCHEMA).ok


def test_an_unknown_column_error_says_where_the_column_is():
    """The repair prompt shows this error: it names the table that has the column and the
    real columns of the tables the query reads."""
    sql = "SELECT c.name, c.total FROM customers AS c"
    message = validate_sql(sql, SCHEMA).message
    assert message == (
        "Unknown column: total. total is a column of orders. To use it, add JOIN orders ON "
        "orders.customer_id = c.id. Columns: customers(id, name, country)"
    )
    assert "\n" not in message
    # a CTE's columns too (a follow-up's previous_result): the query may read them
    cte = "WITH top(who, n) AS (SELECT name, count(*) FROM customers) SELECT spent FROM top"
    assert validate_sql(cte, SCHEMA).message.endswith(
        "Columns: top(who, n); customers(id, name, country)"
    )


def test_an_unknown_column_error_gives_the_join_that_reaches_its_table():
    """On a bigger schema the model reads a column of a table it did not join (emp_fname on
    PROFESSOR, a column of EMPLOYEE): the error gives the JOIN clauses to add, along the
    foreign keys (through a table in between when needed, a key without its column meaning
    the primary key), with the query's own aliases. A table the query does read, under an
    alias, is named with that alias instead."""
    schema = Schema(
        tables={
            "students": Table("students", [Column("id", "INTEGER", True), Column("name", "TEXT")]),
            "enrolments": Table(
                "enrolments",
                [Column("student_id", "INTEGER"), Column("course_id", "INTEGER")],
                [
                    ForeignKey("student_id", "students", "id"),
                    ForeignKey("course_id", "courses", None),
                ],
            ),
            "courses": Table("courses", [Column("id", "INTEGER", True), Column("title", "TEXT")]),
        }
    )
    two_hops = validate_sql("SELECT s.title FROM students AS s", schema).message
    assert two_hops.startswith(
        "Unknown column: title. title is a column of courses. To use it, add JOIN enrolments ON "
        "enrolments.student_id = s.id, then JOIN courses ON enrolments.course_id = courses.id. "
    )
    sql = "SELECT e.name FROM students AS s JOIN enrolments AS e ON e.student_id = s.id"
    wrong_alias = validate_sql(sql, schema).message
    assert wrong_alias.startswith(
        "Unknown column: name. name is a column of students (read here as s). Columns: "
    )
    unrelated = Schema({**schema.tables, "notes": Table("notes", [Column("memo", "TEXT")])})
    assert "JOIN" not in validate_sql("SELECT memo FROM students", unrelated).message


def test_an_unknown_table_error_lists_the_tables():
    message = validate_sql("SELECT count(*) FROM clients", SCHEMA).message
    assert message == "Unknown table: clients. The tables are: customers, orders"


def test_text_that_does_not_tokenize_is_a_checking_error_not_a_crash():
    """A sampled candidate can stop inside a string literal; sqlglot's tokenizer then raises
    TokenError (not ParseError)."""
    raw = "SELECT name FROM customers\nWHERE country = 'Fra"
    assert extract_sql(raw) == "SELECT name FROM customers"  # the part that parses
    check = validate_sql("SELECT name FROM customers WHERE country = 'Fra", SCHEMA)
    assert not check.ok and check.message.startswith("SQL does not parse")
