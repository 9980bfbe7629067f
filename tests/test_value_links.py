"""Value linking (engine/rag/values.py): question words matched to stored values, on real
SQLite and DuckDB files, and in the retriever's prompt."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.db import open_database
from engine.rag.values import ValueIndex, fold


@pytest.fixture
def world_db(tmp_path: Path) -> Path:
    path = tmp_path / "world.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE country (Code TEXT PRIMARY KEY, Name TEXT, Continent TEXT, Region TEXT);
        CREATE TABLE countrylanguage (CountryCode TEXT, Language TEXT, IsOfficial TEXT,
            Percentage REAL, FOREIGN KEY (CountryCode) REFERENCES country(Code));
        CREATE TABLE album (id INTEGER PRIMARY KEY, Title TEXT, released TEXT, catalog TEXT);
        INSERT INTO country VALUES ('FRA', 'France', 'Europe', 'Western Europe'),
            ('BRA', 'Brazil', 'South America', 'South America'),
            ('CIV', 'Côte d''Ivoire', 'Africa', 'Western Africa');
        INSERT INTO countrylanguage VALUES ('FRA', 'French', 'T', 93.6),
            ('BRA', 'Portuguese', 'T', 97.5), ('CIV', 'French', 'T', 0);
        INSERT INTO album VALUES (1, 'Greatest Hits II', '2010-03-03 10:00:00', '1000'),
            (2, 'Unplugged [Live]', '1999-01-01', '77');
        """
    )
    con.commit()
    con.close()
    return path


def links(db_path: Path, question: str, tmp_path: Path, limit: int = 6) -> list[str]:
    db = open_database(db_path)
    schema = db.read_schema()
    index = ValueIndex(tmp_path / "values" / "v.sqlite")
    if not index.is_current("k"):
        index.build(db, schema, "k")
    return [link.text() for link in index.links(question, schema, limit)]


def test_a_value_is_linked_in_its_stored_form_with_its_column(world_db, tmp_path):
    assert links(world_db, "Which countries in europe speak french?", tmp_path) == [
        "country.Continent = 'Europe'",
        "countrylanguage.Language = 'French'",
    ]
    # the longest phrase wins: "south america" is one value, not "america" of another
    assert links(world_db, "How many countries are in south america?", tmp_path) == [
        "country.Continent = 'South America'",
        "country.Region = 'South America'",
    ]


def test_accents_and_case_fold_but_the_stored_form_is_shown(world_db, tmp_path):
    assert links(world_db, "What languages are spoken in cote d'ivoire?", tmp_path) == [
        "country.Name = 'Côte d''Ivoire'"
    ]


def test_names_may_link_to_a_value_holding_them_common_words_may_not(world_db, tmp_path):
    assert links(world_db, "When was Greatest Hits released?", tmp_path) == [
        "album.Title: 'Greatest Hits II' (for \"Greatest Hits\")"
    ]
    assert links(world_db, "Which albums were recorded live?", tmp_path) == []
    # a word that names a table or column is not a value
    assert links(world_db, "List every album title and region", tmp_path) == []


def test_dates_and_numbers_are_normalised(world_db, tmp_path):
    assert links(world_db, "Which album came out on March 3, 2010?", tmp_path) == [
        "album.released: '2010-03-03 10:00:00' (for \"2010-03-03\")"
    ]
    assert links(world_db, "Which album has catalog number 1,000?", tmp_path) == [
        "album.catalog = '1000'"
    ]


def test_the_index_is_built_once_and_again_when_its_key_changes(world_db, tmp_path):
    db = open_database(world_db)
    schema = db.read_schema()
    index = ValueIndex(tmp_path / "v.sqlite")
    assert not index.is_current("a")
    assert index.build(db, schema, "a") == 24  # distinct values of the 10 text columns
    assert index.is_current("a") and not index.is_current("b")
    assert not list(tmp_path.glob(".*.tmp"))  # written whole, then renamed


def test_a_duckdb_file_is_indexed_through_its_read_only_runner(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE city (name VARCHAR, district VARCHAR, population INTEGER)")
    con.execute("INSERT INTO city VALUES ('Leeds', 'West Yorkshire', 800000)")
    con.close()
    assert links(path, "How many people live in west yorkshire?", tmp_path) == [
        "city.district = 'West Yorkshire'"
    ]


def test_fold():
    assert fold("  Côte d'Ivoire ") == "cote d ivoire"
    assert fold("AC/DC") == "ac dc"


def test_the_retriever_puts_the_links_last_in_the_prompt_only_when_asked(world_db, tmp_path):
    from engine.rag.config import RagConfig
    from engine.rag.retriever import LINKS_HEADER, RagRetriever

    db = open_database(world_db)
    schema = db.read_schema()
    question = "Which countries in europe speak french?"
    for n, shown in ((0, False), (4, True)):
        rag = RagRetriever(RagConfig(store_dir=str(tmp_path / "store"), value_links=n))
        ctx = rag.context(question, db, schema, 4000, lambda t: len(t) // 4)
        assert (LINKS_HEADER in (ctx.notes or "")) is shown
    assert ctx.notes.endswith(
        LINKS_HEADER + "\ncountry.Continent = 'Europe'\ncountrylanguage.Language = 'French'"
    )
    assert list((tmp_path / "store" / "values").glob("*.sqlite"))
