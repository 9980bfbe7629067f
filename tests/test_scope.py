"""A follow-up about the previous rows, kept to them by the engine (engine.scope)."""

import json
import sqlite3

import pytest

from engine.conversation import FollowupConfig
from engine.db import open_database
from engine.pipeline import TextToSQL
from engine.scope import (
    EACH,
    misses,
    name_rows,
    previous_entity,
    refers_to_rows,
    restrict,
    rows_noun,
)
from tests.helpers import ScriptedBackend

TOP2 = (
    "SELECT c.name, SUM(o.total) AS spent FROM customers AS c JOIN orders AS o "
    "ON o.customer_id = c.id GROUP BY c.id ORDER BY spent DESC LIMIT 2"
)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "shop.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id),
                             total REAL);
        CREATE TABLE reviews (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id),
                              stars INTEGER);
        INSERT INTO customers VALUES (1, 'Ann', 'Leeds'), (2, 'Bo', 'York'), (3, 'Cy', 'Leeds'),
                                     (4, 'Di', 'Leeds');
        INSERT INTO orders VALUES (1, 1, 50), (2, 2, 40), (3, 3, 10), (4, 4, 5);
        INSERT INTO reviews VALUES (1, 1, 5), (2, 1, 4), (3, 3, 2), (4, 2, 3);
        """
    )
    con.commit()
    con.close()
    return path


def _schema(db):
    return open_database(db).read_schema()


def test_the_previous_rows_are_told_by_their_grouped_or_primary_key(db):
    schema = _schema(db)
    top = previous_entity(TOP2, schema)
    assert (top.table, top.column) == ("customers", "id")
    shown = previous_entity("SELECT name FROM customers WHERE city = 'Leeds'", schema)
    assert (shown.table, shown.column) == ("customers", "id")
    # a single number is not rows of anything; SQL that does not parse neither
    assert previous_entity("SELECT count(*) FROM customers", schema) is None
    assert previous_entity("SELECT FROM (", schema) is None


def test_a_follow_up_is_limited_to_the_previous_rows_where_it_reads_their_table(db):
    schema = _schema(db)
    top = previous_entity(TOP2, schema)
    sql = restrict("SELECT name FROM customers WHERE city = 'Leeds'", top, schema)
    con = sqlite3.connect(db)
    assert con.execute(sql).fetchall() == [("Ann",)]  # not Cy and Di: they are not the top two
    # a table with a foreign key to them: shown by their names, as the previous answer did
    by_fk = restrict("SELECT customer_id, count(*) FROM reviews GROUP BY customer_id", top, schema)
    assert sorted(con.execute(by_fk).fetchall()) == [("Ann", 2), ("Bo", 1)]
    # neither their table nor one that refers to it: left as written (None)
    assert restrict("SELECT count(*) FROM orders AS o, reviews AS r", top, schema) is not None
    assert restrict("SELECT 1", top, schema) is None


def test_the_scope_way_keeps_a_which_of_them_question_to_the_previous_answer(db):
    backend = ScriptedBackend(["SELECT name FROM customers WHERE city = 'Leeds'"])
    # within=False: the scope way's own SQL (with it, the previous SQL kept to Ann: test_compose)
    engine = TextToSQL(backend, followup=FollowupConfig(way="scope", within=False))
    answer = engine.ask("which of them live in Leeds?", db, [("Top two spenders?", TOP2)])
    assert answer.ok and answer.rows == [["Ann"]] and answer.way == "scope"
    assert "IN (SELECT scope_key FROM" in answer.sql
    # the model was asked the question alone, told what "them" are
    assert "Top two spenders?" not in backend.prompts[0]
    assert "which of the customers live in Leeds?" in backend.prompts[0]
    assert answer.question == "which of them live in Leeds?"
    # a refinement has no "them": its SQL runs as written
    backend = ScriptedBackend(["SELECT name FROM customers WHERE city = 'York'"])
    engine = TextToSQL(backend, followup=FollowupConfig(way="scope"))
    answer = engine.ask("what about York?", db, [("Who lives in Leeds?", "SELECT 1")])
    assert answer.rows == [["Bo"]] and "scope_key" not in answer.sql


def test_rows_are_referred_to_by_pronouns():
    assert refers_to_rows("which of them live in Leeds?")
    assert refers_to_rows("what are their job titles?")
    assert not refers_to_rows("what about York?")
    # one row, or each of them; not "the same" (other rows like them), not "it's"
    for question in (
        "what is its capacity?",
        "how many rooms are in it?",
        "what is his salary?",
        "which ones live in Leeds?",
        "how many does each one have?",
        "only the ones in Leeds",
        "which of the above are open?",
        "which of the same customers paid?",
        "how many in total per customer listed?",
        "how many sections in each?",
        "how many races has each hosted?",
    ):
        assert refers_to_rows(question), question
    for question in (
        "which others live in the same city?",
        "it's late: how many orders?",
        "which items cost above 10?",
        "what about the ones founded before 1910?",
        "and the ones who paid by card?",
        "how many students does each advisor have?",
        "What are the card types, and how many cards are there of each?",
    ):
        assert not refers_to_rows(question), question


@pytest.mark.parametrize(
    ("question", "table", "named"),
    [
        ("which of them are in Sales?", "employees", "which of the employees are in Sales?"),
        ("who are their managers?", "employees", "who are the employees' managers?"),
        ("what departments are they in?", "employees", "what departments are the employees in?"),
        (
            "how many units of each of those were ordered?",
            "product",
            "how many units of each of the products were ordered?",
        ),
        (
            "which of these have never been reviewed?",
            "Products",
            "which of the products have never been reviewed?",
        ),
        (
            "which of them is the oldest?",
            "Apartment_Buildings",
            "which of the apartment buildings is the oldest?",
        ),
        ("sort them by name", "country", "sort the countries by name"),
        ("what is its budget?", "department", "what is the departments' budget?"),
        ("how many students live in it?", "dorm", "how many students live in the dorms?"),
        ("what is her salary?", "staff", "what is the staffs' salary?"),
        ("who manages her?", "staff", "who manages the staffs?"),
        (
            "how many orders does each one have?",
            "customer",
            "how many orders does each of the customers have?",
        ),
        ("which ones live in Leeds?", "customer", "which of the customers live in Leeds?"),
        ("only the ones listed above in Leeds", "customer", "only the customers in Leeds"),
        (
            "which of the above have no orders?",
            "customer",
            "which of the customers have no orders?",
        ),
        ("and the same for York?", "customer", "and the same for York?"),
        ("which of the same customers paid?", "customer", "which of the customers paid?"),
        ("orders per customer listed?", "customer", "orders for each of the customers?"),
        ("how many sections in each?", "course", "how many sections in each of the courses?"),
        (
            "how many races has each hosted?",
            "circuit",
            "how many races has each of the circuits hosted?",
        ),
        (
            "how many copies has each one sent?",
            "editor",
            "how many copies has each of the editors sent?",
        ),
        (
            "how many of those customers live in Leeds?",
            "customers",  # named already
            "how many of those customers live in Leeds?",
        ),
    ],
)
def test_a_scoped_question_names_the_rows_it_points_at(question, table, named):
    assert name_rows(question, table) == named


def test_a_table_name_reads_as_a_plural_noun():
    assert [rows_noun(t) for t in ("constructorResults", "church", "city", "day")] == [
        "constructor results",
        "churches",
        "cities",
        "days",
    ]


@pytest.mark.parametrize("scope", [True, False])
def test_any_way_is_limited_to_the_previous_rows_unless_turned_off(db, scope):
    backend = ScriptedBackend(["SELECT name FROM customers WHERE city = 'Leeds'"])
    engine = TextToSQL(backend, followup=FollowupConfig(way="edit", scope=scope, within=False))
    answer = engine.ask("and which of those live in Leeds?", db, [("Top two spenders?", TOP2)])
    assert answer.way == "edit" and "Top two spenders?" in backend.prompts[0]
    assert answer.rows == ([["Ann"]] if scope else [["Ann"], ["Cy"], ["Di"]])


def test_a_follow_up_about_them_shows_whose_rows_they_are(db):
    schema = _schema(db)
    top = previous_entity(TOP2, schema)
    assert top.labels == ("name",)  # spent is a number, not a name
    con = sqlite3.connect(db)

    def rows(sql):
        return sorted(con.execute(restrict(sql, top, schema)).fetchall())

    # "where do they live?": their names are put in front
    assert rows("SELECT city FROM customers") == [("Ann", "Leeds"), ("Bo", "York")]
    # grouped by their key: one row each, named (and the key, never shown before, left out)
    assert rows(
        "SELECT c.id, count(r.id) FROM customers AS c JOIN reviews AS r "
        "ON r.customer_id = c.id GROUP BY c.id"
    ) == [("Ann", 2), ("Bo", 1)]
    # already named, a count of them, or grouped by something else: as written
    assert rows("SELECT name, city FROM customers") == [("Ann", "Leeds"), ("Bo", "York")]
    assert rows("SELECT count(*) FROM customers WHERE city = 'Leeds'") == [(1,)]
    assert rows("SELECT city, count(*) FROM customers GROUP BY city") == [
        ("Leeds", 1),
        ("York", 1),
    ]
    assert rows("SELECT * FROM customers WHERE city = 'York'") == [(2, "Bo", "York")]
    # through a table that refers to them: their names instead of the key
    assert rows("SELECT customer_id, stars FROM reviews WHERE stars > 3") == [
        ("Ann", 4),
        ("Ann", 5),
    ]


def test_the_previous_rows_keep_their_names_and_not_their_keys(db):
    schema = _schema(db)
    top = previous_entity(TOP2, schema)
    con = sqlite3.connect(db)

    def rows(sql):
        return sorted(con.execute(restrict(sql, top, schema)).fetchall())

    # their id beside their names: the previous answer showed no ids
    assert rows("SELECT id, name FROM customers WHERE city = 'Leeds'") == [("Ann",)]
    # a foreign key to them beside their names
    by_fk = (
        "SELECT c.name, r.customer_id FROM customers AS c JOIN reviews AS r ON r.customer_id = c.id"
    )
    assert rows(by_fk) == [("Ann",), ("Ann",), ("Bo",)]
    # only the key: their names instead
    assert rows("SELECT id FROM customers") == [("Ann",), ("Bo",)]
    # a bare key column of a grouped count becomes their names, joined
    count = "SELECT count(*), customer_id FROM orders GROUP BY customer_id"
    assert rows(count) == [(1, "Ann"), (1, "Bo")]
    assert "scope_names" in restrict(count, top, schema)
    # the previous answer showed their ids: the follow-up may too
    by_id = previous_entity("SELECT id, name FROM customers WHERE city = 'Leeds'", schema)
    assert by_id.key_shown
    assert restrict("SELECT id, name FROM customers", by_id, schema).startswith("SELECT id, name")


def test_the_scope_way_repairs_an_answer_that_does_not_read_the_previous_rows(tmp_path):
    path = tmp_path / "hr.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE jobs (id INTEGER PRIMARY KEY, title TEXT);
        CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT,
                                job_id INTEGER REFERENCES jobs(id));
        INSERT INTO jobs VALUES (1, 'Clerk'), (2, 'Chef'), (3, 'Pilot');
        INSERT INTO employees VALUES (1, 'Ann', 2), (2, 'Bo', 1), (3, 'Cy', 3);
        """
    )
    con.commit()
    con.close()
    backend = ScriptedBackend(
        [
            "SELECT title FROM jobs",  # every job title: not about them at all
            "SELECT j.title FROM jobs AS j JOIN employees AS e ON j.id = e.job_id",
        ]
    )
    engine = TextToSQL(backend, followup=FollowupConfig(way="scope"), max_attempts=2)
    history = [("Who has an id below 3?", "SELECT name FROM employees WHERE id < 3")]
    answer = engine.ask("what are their job titles?", path, history)
    assert "what are the employees' job titles?" in backend.prompts[0]
    repair = json.loads(backend.prompts[1])[-1]["content"]
    assert "rows of employees, but the query does not read employees" in repair
    assert "add JOIN employees ON employees.job_id = jobs.id" in repair
    assert answer.ok and answer.attempts == 2
    assert sorted(answer.rows) == [["Ann", "Chef"], ["Bo", "Clerk"]]
    schema = open_database(path).read_schema()
    them = previous_entity(history[0][1], schema)
    assert misses("SELECT title FROM jobs", them, schema)
    assert (
        misses("SELECT j.title FROM jobs AS j JOIN employees AS e ON j.id = e.job_id", them, schema)
        is None
    )
    # another way (edit) may read them through its own restatement: not checked there
    backend = ScriptedBackend(["SELECT title FROM jobs"])
    edit = TextToSQL(backend, followup=FollowupConfig(way="edit"), max_attempts=1)
    assert edit.ask("what are their job titles?", path, history).ok


LEEDS = "SELECT name FROM customers WHERE city = 'Leeds'"  # Ann, Cy, Di


def test_a_lone_aggregate_asked_of_each_of_them_is_counted_for_each(db):
    schema = _schema(db)
    leeds = previous_entity(LEEDS, schema)
    con = sqlite3.connect(db)

    def rows(sql, each=True):
        return sorted(con.execute(restrict(sql, leeds, schema, each)).fetchall())

    # "how many good reviews has each of them written?": one count over reviews becomes
    # one count per customer (Di, who wrote none, counted 0)
    good = "SELECT COUNT(*) FROM reviews WHERE stars >= 2"
    assert rows(good) == [("Ann", 2), ("Cy", 1), ("Di", 0)]
    # any aggregate: none to sum is no sum
    assert rows("SELECT MAX(stars), SUM(stars) FROM reviews") == [
        ("Ann", 5, 9),
        ("Cy", 2, 2),
        ("Di", None, None),
    ]
    # not asked of each of them: one number over their rows, as before
    assert rows(good, each=False) == [(3,)]
    # counts grouped by the foreign key to them leave out those with none: counted for each
    by_fk = "SELECT customer_id, COUNT(*) FROM reviews GROUP BY customer_id"
    assert rows(by_fk) == [("Ann", 2), ("Cy", 1), ("Di", 0)]
    assert rows(by_fk, each=False) == [("Ann", 2), ("Cy", 1)]
    # grouped by something else, not only aggregates, or a count of them: as written, kept
    assert rows("SELECT stars, COUNT(*) FROM reviews GROUP BY stars") == [(2, 1), (4, 1), (5, 1)]
    assert rows("SELECT COUNT(*) FROM customers") == [(3,)]
    # not an aggregate: kept, with whose rows they are in front (_name_referring)
    assert rows("SELECT stars FROM reviews WHERE stars > 3") == [("Ann", 4), ("Ann", 5)]


def test_their_table_joined_to_the_counted_one_is_counted_for_each_of_them(db):
    schema = _schema(db)
    leeds = previous_entity(LEEDS, schema)
    con = sqlite3.connect(db)

    def rows(sql, each=True):
        return sorted(con.execute(restrict(sql, leeds, schema, each)).fetchall())

    # an inner join leaves out Di, who wrote none: each of them is counted, Di 0
    joined = (
        "SELECT c.name, COUNT(r.id) FROM customers AS c JOIN reviews AS r "
        "ON r.customer_id = c.id GROUP BY c.name"
    )
    assert rows(joined) == [("Ann", 2), ("Cy", 1), ("Di", 0)]
    assert rows(joined, each=False) == [("Ann", 2), ("Cy", 1)]
    # either table first, their key counted, a condition on each table kept where it belongs
    flipped = (
        "SELECT c.name, COUNT(c.id) FROM reviews AS r JOIN customers AS c ON c.id = r.customer_id "
        "WHERE r.stars > 2 AND c.name <> 'Cy' GROUP BY c.id"
    )
    assert rows(flipped) == [("Ann", 2), ("Di", 0)]
    # their own columns aggregated, a condition on both, or a third table: as written, kept
    for kept in (
        "SELECT c.name, MAX(c.city) FROM customers AS c JOIN reviews AS r "
        "ON r.customer_id = c.id GROUP BY c.name",
        "SELECT c.name, COUNT(*) FROM customers AS c JOIN reviews AS r "
        "ON r.customer_id = c.id WHERE r.stars > c.id GROUP BY c.name",
        "SELECT c.name, COUNT(*) FROM customers AS c JOIN reviews AS r ON r.customer_id = c.id "
        "JOIN orders AS o ON o.customer_id = c.id GROUP BY c.name",
    ):
        assert ("Di", 0) not in rows(kept)


STARS = "SELECT c.name, r.stars FROM customers AS c JOIN reviews AS r ON r.customer_id = c.id"


def test_a_question_about_all_of_them_keeps_those_with_nothing_joined(db):
    schema = _schema(db)
    leeds = previous_entity(LEEDS, schema)
    con = sqlite3.connect(db)

    def rows(sql, whole=True):
        return sorted(con.execute(restrict(sql, leeds, schema, whole=whole)).fetchall(), key=str)

    # "what stars did they give?": Di, who wrote no review, keeps her row
    assert rows(STARS) == [("Ann", 4), ("Ann", 5), ("Cy", 2), ("Di", None)]
    # asked for some of them ("which of them gave 5 stars?"), as before
    assert rows(STARS, whole=False) == [("Ann", 4), ("Ann", 5), ("Cy", 2)]
    # a condition on their own table keeps its rows as well
    assert rows(STARS + " WHERE c.name <> 'Ann'") == [("Cy", 2), ("Di", None)]
    # a condition on the joined table, an aggregate, or their table joined to: as written
    for kept in (
        STARS + " WHERE r.stars > 1",
        "SELECT c.name, COUNT(r.id) FROM customers AS c JOIN reviews AS r "
        "ON r.customer_id = c.id GROUP BY c.name",
        "SELECT c.name, r.stars FROM reviews AS r JOIN customers AS c ON r.customer_id = c.id",
    ):
        assert "Di" not in {row[0] for row in rows(kept)}


def test_the_answer_loop_keeps_all_of_them_unless_asked_for_some(db):
    backend = ScriptedBackend([STARS, STARS + " WHERE r.stars >= 4"])
    engine = TextToSQL(backend, followup=FollowupConfig(way="scope"), max_attempts=1)
    history = [("Who lives in Leeds?", LEEDS)]
    answer = engine.ask("what stars did they give?", db, history)
    assert answer.ok and ["Di", None] in answer.rows
    some = engine.ask("which of them gave four stars or more?", db, history)
    assert some.ok and sorted(some.rows) == [["Ann"]]


def test_a_list_of_foreign_keys_names_the_rows_they_refer_to(db):
    # "which customers wrote a review?" answered with the reviews' customer_id: the rows are
    # customers, and a follow-up about them is kept to those customers
    schema = _schema(db)
    con = sqlite3.connect(db)
    ids = "SELECT DISTINCT r.customer_id FROM reviews AS r WHERE r.stars >= 3"  # 1, 2
    found = previous_entity(ids, schema)
    assert (found.table, found.column, found.via, found.key_shown) == (
        "customers",
        "id",
        "customer_id",
        True,
    )
    sql = restrict("SELECT id FROM customers WHERE city = 'Leeds'", found, schema)
    assert con.execute(sql).fetchall() == [(1,)]
    # its own key, or a column that is not a foreign key, names the rows of its own table
    assert previous_entity("SELECT DISTINCT id FROM reviews", schema).table == "reviews"
    assert previous_entity("SELECT DISTINCT stars FROM reviews", schema).via == ""


@pytest.mark.parametrize(
    ("question", "each"),
    [
        ("how many concerts has each of them headlined?", True),
        ("and what did each one spend?", True),
        ("how many reviews do they have in total?", False),
        ("which of them live in Leeds?", False),
    ],
)
def test_a_question_of_each_row_is_told_by_its_words(question, each):
    assert (EACH.search(question) is not None) is each


def test_the_answer_loop_counts_a_lone_aggregate_for_each_of_them(db):
    backend = ScriptedBackend(["SELECT COUNT(*) FROM reviews WHERE stars >= 2"])
    engine = TextToSQL(backend, followup=FollowupConfig(way="scope"))
    history = [("Who lives in Leeds?", LEEDS)]
    answer = engine.ask("how many good reviews has each of them written?", db, history)
    assert answer.ok and sorted(answer.rows) == [["Ann", 2], ["Cy", 1], ["Di", 0]]
    assert answer.columns == ["name", "count"]


def test_a_column_named_as_their_key_refers_to_them_where_none_is_declared(tmp_path):
    # Spider declares many links nowhere: contacts.customer_id refers to customers all the same
    path = tmp_path / "undeclared.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, customer_name TEXT, pay TEXT);"
        "CREATE TABLE contacts (contact_id INTEGER PRIMARY KEY, customer_id INTEGER, phone TEXT);"
        "CREATE TABLE notes (note_id INTEGER PRIMARY KEY, id INTEGER, body TEXT);"
        "INSERT INTO customers VALUES (1,'Ann','card'),(2,'Bo','card'),(3,'Cy','cash');"
        "INSERT INTO contacts VALUES (1,1,'111'),(2,1,'112'),(3,3,'333');"
        "INSERT INTO notes VALUES (1,1,'x');"
    )
    con.commit()
    schema = _schema(path)
    card = previous_entity("SELECT customer_name FROM customers WHERE pay = 'card'", schema)
    sql = restrict("SELECT customer_id, phone FROM contacts", card, schema)
    assert sorted(con.execute(sql).fetchall()) == [("Ann", "111"), ("Ann", "112")]
    count = "SELECT customer_id, COUNT(*) FROM contacts GROUP BY customer_id"
    rows = con.execute(restrict(count, card, schema, each=True)).fetchall()
    assert sorted(rows) == [("Ann", 2), ("Bo", 0)]
    # a bare "id" says nothing about what it keys: not theirs
    assert restrict("SELECT body FROM notes", card, schema) is None


def test_a_follow_up_about_the_one_row_before_shows_whose_rows_it_reads(db):
    """ "Who wrote the most reviews?" then "which stars did she give?": the answer read from
    reviews alone is shown with her name in front; "how many did it get?" of the one row
    before is counted for it (EACH), as "each of them" is."""
    schema = _schema(db)
    top = previous_entity(
        "SELECT c.name FROM customers AS c JOIN reviews AS r ON r.customer_id = c.id "
        "GROUP BY c.id, c.name ORDER BY COUNT(*) DESC LIMIT 1",
        schema,
    )
    con = sqlite3.connect(db)
    sql = restrict("SELECT stars FROM reviews", top, schema)
    assert sorted(con.execute(sql).fetchall()) == [("Ann", 4), ("Ann", 5)]
    # the key shown: its names in its place (_name_keys), joined once; an aggregate: one number
    keyed = restrict("SELECT customer_id, stars FROM reviews", top, schema)
    assert keyed.count("JOIN customers") == 1
    assert sorted(con.execute(keyed).fetchall()) == [("Ann", 4), ("Ann", 5)]
    assert con.execute(restrict("SELECT COUNT(*) FROM reviews", top, schema)).fetchall() == [(2,)]
    assert all(EACH.search(q) for q in ("how many did she write?", "how many has it got?"))
    assert not EACH.search("it's late: how many reviews?")
    counted = restrict("SELECT COUNT(*) FROM reviews", top, schema, each=True)
    assert con.execute(counted).fetchall() == [("Ann", 2)]
