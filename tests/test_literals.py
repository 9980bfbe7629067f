"""A text compared to a column that never holds it moves to the one that does (engine.literals)."""

import sqlite3

import pytest

from engine.config import EngineConfig, load_config
from engine.db import open_database
from engine.factory import engine_from_config
from engine.literals import MAX_PROBES, relink_literals
from engine.pipeline import TextToSQL
from tests.helpers import FakeBackend


@pytest.fixture
def services(tmp_path):
    path = tmp_path / "services.sqlite"
    with sqlite3.connect(path) as con:
        con.executescript(
            """
            CREATE TABLE Organizations (organization_id INTEGER PRIMARY KEY,
                organization_details VARCHAR(255));
            CREATE TABLE Services (service_id INTEGER PRIMARY KEY, organization_id INTEGER
                REFERENCES Organizations(organization_id), service_type_code CHAR(15),
                service_details VARCHAR(255), note TEXT);
            INSERT INTO Organizations VALUES (1, 'Denesik and Sons Party'), (2, 'Robel-Schulist');
            INSERT INTO Services VALUES
                (1, 1, 'Moving Out', 'Satisfied', 'Satisfied'),
                (2, 1, 'Pay bills', 'Unsatisfied', NULL),
                (3, 2, 'Check', 'Unsatisfied', NULL),
                (4, 2, 'Moving Out', 'Satisfied', 'Check');
            """
        )
    return path


def relinked(sql, path, **budget):
    db = open_database(path)
    schema = db.read_schema()

    def lookup(probe):
        result = db.run_readonly(probe, timeout_s=2.0, max_rows=2)
        return result.rows if result.ok else []

    return relink_literals(sql, schema, schema.dialect, lookup, **budget)


def test_a_value_in_the_wrong_column_moves_to_the_one_that_holds_it(services):
    assert (
        relinked("SELECT COUNT(*) FROM Services WHERE service_type_code = 'Unsatisfied'", services)
        == "SELECT COUNT(*) FROM Services WHERE service_details = 'Unsatisfied'"
    )
    # by alias, in a join, spelled as stored (case aside), the other conditions kept
    assert relinked(
        "SELECT o.organization_details FROM Services AS s JOIN Organizations AS o "
        "ON s.organization_id = o.organization_id "
        "WHERE s.service_type_code = 'unsatisfied' AND s.service_id > 1",
        services,
    ) == (
        "SELECT o.organization_details FROM Services AS s JOIN Organizations AS o "
        "ON s.organization_id = o.organization_id "
        "WHERE s.service_details = 'Unsatisfied' AND s.service_id > 1"
    )
    # inside a subquery, with that subquery's own table
    assert relinked(
        "SELECT organization_details FROM Organizations WHERE organization_id IN "
        "(SELECT organization_id FROM Services WHERE service_type_code = 'Unsatisfied')",
        services,
    ).endswith("WHERE service_details = 'Unsatisfied')")


def test_a_query_whose_values_are_where_it_looks_is_left_as_written(services):
    for sql in (
        "SELECT COUNT(*) FROM Services WHERE service_details = 'Unsatisfied'",
        "SELECT COUNT(*) FROM Services WHERE service_type_code = 'Moving Out'",
        # nowhere in the table: a value the database does not have, left to the answer
        "SELECT COUNT(*) FROM Services WHERE service_type_code = 'Gardening'",
        # in two other columns ('Check' is a type and a note): which one is unclear
        "SELECT COUNT(*) FROM Services WHERE service_details = 'Check'",
        # a column of another table ('Satisfied' is no organization's): not that table's
        "SELECT COUNT(*) FROM Organizations WHERE organization_details = 'Unsatisfied'",
        "SELECT COUNT(*) FROM Services WHERE service_id = 2",
        "not SQL at all (",
    ):
        assert relinked(sql, services) is None, sql


def test_a_query_with_more_conditions_than_probes_or_time_is_left_as_written(services):
    many = " OR ".join(["service_type_code = 'Unsatisfied'"] * MAX_PROBES)
    assert relinked(f"SELECT COUNT(*) FROM Services WHERE {many}", services) is None
    one = "SELECT COUNT(*) FROM Services WHERE service_type_code = 'Unsatisfied'"
    assert relinked(one, services) is not None
    assert relinked(one, services, budget_s=0.0) is None  # a database too slow to look up


def test_the_answer_loop_moves_it_when_the_setting_is_on_as_it_is_by_default(services):
    wrong = "SELECT COUNT(*) FROM Services WHERE service_type_code = 'Unsatisfied'"

    def ask(**settings):
        engine = TextToSQL(FakeBackend(lambda prompt: wrong), max_attempts=1, **settings)
        return engine.ask("How many services are marked as unsatisfied?", services)

    off, on = ask(), ask(relink_literals=True)
    assert (off.sql, off.rows) == (wrong, [[0]])
    assert on.sql == "SELECT COUNT(*) FROM Services WHERE service_details = 'Unsatisfied'"
    assert on.rows == [[2]]
    cfg = load_config(EngineConfig, None, {"relink_literals": True, "rag.enabled": False})
    assert cfg.relink_literals and EngineConfig().relink_literals
    assert engine_from_config(cfg, backend=FakeBackend(lambda p: wrong)).relink_literals
    cfg = load_config(EngineConfig, None, {"relink_literals": False, "rag.enabled": False})
    assert not engine_from_config(cfg, backend=FakeBackend(lambda p: wrong)).relink_literals
