"""Results people can use (CSV, charts), public messages, and the chat and examples handlers
driven without a browser (the browser tests are in test_app_feedback_browser)."""

import csv

import pytest

from app import chat_tab
from app.databases import databases_of
from app.engines import EnginePool
from app.examples_panel import ExamplesPanel
from app.messages import public
from app.results import MAX_BARS, choose_chart, csv_file
from engine.config import EngineConfig
from engine.history import QuestionHistory
from engine.rag.config import RagConfig
from engine.rag.saved_pairs import SavedPairs

SHOP = "shop (sample)"


# --- charts ---------------------------------------------------------------------------------


def test_one_text_and_one_number_column_is_a_bar_chart_in_result_order():
    chart = choose_chart(["status", "orders"], [["delivered", 500], ["pending", 80], ["x", 3]])
    assert (chart.kind, chart.x, chart.y) == ("bar", "status", "orders")
    assert chart.order == ["delivered", "pending", "x"] and chart.y_lim == [0.0, 500.0]
    negative = choose_chart(["team", "delta"], [["a", -5], ["b", 3]])
    assert negative.y_lim == [-5.0, 3.0]
    codes = choose_chart(["code", "n"], [["2023", 1], ["2024", 2]])
    assert codes.kind == "bar"  # four digits are a year only in a column named so


def test_dates_or_years_with_numbers_are_a_line_chart():
    chart = choose_chart(["month", "revenue"], [["2024-02", 5.0], ["2024-01", 7.5]])
    assert (chart.kind, chart.x, chart.y, chart.color) == ("line", "month", "revenue", None)
    assert str(chart.frame["month"].dtype).startswith("datetime64")
    assert list(chart.frame["revenue"]) == [7.5, 5.0]  # in time order
    years = choose_chart(["year", "orders", "customers"], [[2023, 10, 4], [2024, 12, 5]])
    assert (years.kind, years.y, years.color) == ("line", "value", "series")
    assert sorted(set(years.frame["series"])) == ["customers", "orders"]
    stamps = choose_chart(["day", "n"], [["2024-01-01 10:00:00", 1], ["2024-01-02T11:30", 2]])
    assert stamps.kind == "line"


@pytest.mark.parametrize(
    ("columns", "rows"),
    [
        (["n"], [[1], [2]]),  # one column
        (["name", "n"], [["a", 1]]),  # one row
        (["first", "last"], [["a", "b"], ["c", "d"]]),  # no numbers
        (["name", "customer_id"], [["a", 1], ["b", 2]]),  # ids are not quantities
        (["name", "n", "m"], [["a", 1, 2], ["b", 2, 3]]),  # two numbers, no time
        (["name", "n"], [[f"p{i}", i] for i in range(MAX_BARS + 1)]),  # too many bars
    ],
)
def test_other_shapes_get_no_chart(columns, rows):
    assert choose_chart(columns, rows) is None


def test_csv_file_holds_every_row_with_nulls_empty(tmp_path):
    rows = [[1, "Ann", None], [2, "Bo, Jr.", 3.5], [3, 'say "hi"', b"\x00\x01"]]
    path = csv_file(["id", "name", "x"], rows, "shop-result")
    assert path.name == "shop-result.csv"
    with open(path, newline="") as f:
        assert list(csv.reader(f)) == [
            ["id", "name", "x"], ["1", "Ann", ""], ["2", "Bo, Jr.", "3.5"],
            ["3", 'say "hi"', "<blob 2 bytes>"],
        ]  # fmt: skip


# --- messages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Not a SQLite database: /tmp/gradio/ab12/fake.sqlite (no header)",
         "Not a SQLite database: fake.sqlite (no header)"),
        ("The vector store at /srv/data/vector_db/chroma cannot be opened.",
         "The vector store at chroma cannot be opened."),
        ("Query failed: near \"/\": syntax error", "Query failed: near \"/\": syntax error"),
        ("SELECT price/2 FROM t WHERE d = '2024/01/05'", "SELECT price/2 FROM t WHERE d = '2024/01/05'"),
        ("see https://example.com/a/b", "see https://example.com/a/b"),
    ],
)  # fmt: skip
def test_public_messages_name_files_not_server_paths(text, shown):
    assert public(text) == shown


# --- handlers -------------------------------------------------------------------------------


@pytest.fixture
def tab(tmp_path, shop_db):
    import gradio as gr

    pool = EnginePool(EngineConfig(model="scripted"))
    examples = SavedPairs(RagConfig(store_dir=str(tmp_path / "store")), tmp_path)
    tab = chat_tab.ChatTab(pool, examples, QuestionHistory(tmp_path))
    with gr.Blocks():
        tab.build()
    return tab


def _visible(update):
    return update.get("visible") if isinstance(update, dict) else None


def test_a_failed_run_shows_no_result_and_offers_no_save(tab):
    out = tab.on_rerun("SELECT nope FROM orders", SHOP, "What is nope?")
    assert out[tab.status].startswith("**Could not run:**")
    assert _visible(out[tab.result_box]) is False and _visible(out[tab.download]) is False
    assert _visible(out[tab.bar]) is False and _visible(out[tab.line]) is False
    assert _visible(out[tab.save_row]) is False and out[tab.ran] is None
    assert [e.edited for e in tab.history.recent(databases_of()[SHOP])] == [True]


def test_a_good_run_shows_table_chart_download_and_save(tab):
    out = tab.on_rerun("SELECT status, count(*) AS n FROM orders GROUP BY status", SHOP, "Q?")
    assert _visible(out[tab.result_box]) and _visible(out[tab.bar])
    assert _visible(out[tab.line]) is False
    assert out[tab.download]["value"].endswith("shop_sample-result.csv")
    assert _visible(out[tab.save_row]) and out[tab.save_question] == "Q?"
    assert out[tab.ran]["sql"].startswith("SELECT status")
    assert list(out[tab.table].columns) == ["status", "n"]


def test_transpiled_sql_appears_only_when_asked(tab):
    assert _visible(tab.on_transpile("", "postgres")[tab.transpiled]) is False
    shown = tab.on_transpile("SELECT 1 LIMIT 2", "tsql")[tab.transpiled]
    assert _visible(shown) and "TOP 2" in shown["value"]
    cleared = tab.on_clear()
    assert _visible(cleared[tab.transpiled]) is False and _visible(cleared[tab.sql]) is False
    assert _visible(cleared[tab.write]) is True


def test_save_as_correct_needs_sql_that_ran_and_a_question(tab):
    assert "Run the SQL first" in tab.on_save(None, "Q?")[tab.feedback]
    ran = {"db": SHOP, "sql": "SELECT count(*) FROM orders"}
    assert "Type the question" in tab.on_save(ran, "  ")[tab.feedback]
    out = tab.on_save(ran, "How many orders are there in total?")
    assert "as an example for **shop (sample)**" in out[tab.feedback]
    assert _visible(out[tab.save_row]) is False
    assert [p.query for p in tab.examples.list(databases_of()[SHOP])] == [ran["sql"]]
    bad = tab.on_correct({"db": SHOP, "question": "Q", "sql": "SELECT nope FROM orders"})
    assert bad[tab.feedback].startswith("**Not saved:** The SQL does not run")


def test_examples_panel_adds_edits_searches_and_deletes(tmp_path, shop_db):
    import gradio as gr

    examples = SavedPairs(RagConfig(store_dir=str(tmp_path / "store")), tmp_path)
    panel = ExamplesPanel(examples)
    with gr.Blocks():
        panel.build(gr.Dropdown([SHOP], value=SHOP))
    out = panel.on_save(SHOP, None, "How many orders?", "SELECT count(*) FROM orders", "")
    assert out[panel.status].startswith("Added “How many orders?”")
    assert out[panel.selected] is None and out[panel.question] == ""
    assert list(out[panel.table]["value"]["Question"]) == ["How many orders?"]
    assert out[panel.export]["value"].endswith("shop_sample-examples.json")
    [pid] = out[panel.ids]
    picked = panel.on_select(0, 0, [pid], SHOP)
    assert picked[panel.selected] == pid and picked[panel.question] == "How many orders?"
    out = panel.on_save(
        SHOP, pid, "How many orders were placed?", "SELECT count(*) FROM orders", ""
    )
    assert out[panel.status].startswith("Updated") and len(out[panel.ids]) == 1
    assert out[panel.ids] != [pid]
    bad = panel.on_save(SHOP, None, "Broken", "SELECT FROM", "")
    assert bad[panel.status].startswith("**Not saved:**")
    assert panel.refresh(SHOP, "placed")[panel.ids] == out[panel.ids]
    assert panel.refresh(SHOP, "customers")[panel.ids] == []
    gone = panel.on_delete(SHOP, out[panel.ids][0], "")
    assert gone[panel.status].startswith("Deleted “How many orders were placed?”")
    assert gone[panel.ids] == [] and _visible(gone[panel.export]) is False
    assert "55 bundled pairs" in gone[panel.summary]
