import json
import os

from engine.prompt import (
    DEFAULT_FORMAT,
    LLAMA2_CHAT_TEMPLATE,
    SEED_FORMAT,
    SYSTEM_PROMPT,
    PromptFormat,
    build_messages,
    build_repair_messages,
    build_training_example,
    render_prompt,
)

SCHEMA = "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);"


def user_message(instruction, schema, context=None, fmt=DEFAULT_FORMAT):
    """The user turn of a first question."""
    return build_messages(instruction, schema, context, fmt=fmt)[-1]["content"]


def test_user_message_is_the_seed_labels_schema_first():
    assert user_message("How many customers?", SCHEMA) == (
        "SQL table: " + SCHEMA + "\n\nTask: How many customers?\nSQL query: "
    )


def test_context_goes_between_schema_and_task():
    msg = user_message("Q?", SCHEMA, context="revenue means sum(total)")
    assert msg == (
        "SQL table: " + SCHEMA + "\n\nContext:\nrevenue means sum(total)\n\nTask: Q?\nSQL query: "
    )


def test_questions_on_one_schema_share_everything_before_the_notes():
    # The prompt cache of the llama.cpp backend relies on this prefix being identical.
    a = user_message("How many customers?", SCHEMA, context="note a")
    b = user_message("Which city has most orders?", SCHEMA, context="note b")
    assert os.path.commonprefix([a, b]) == "SQL table: " + SCHEMA + "\n\nContext:\nnote "


def test_seed_format_keeps_the_seed_order_with_context_in_front():
    assert user_message("Q?", SCHEMA, fmt=SEED_FORMAT) == (
        "Task: Q?\nSQL table: " + SCHEMA + "\nSQL query: "
    )
    assert user_message("Q?", SCHEMA, context="c", fmt=SEED_FORMAT) == (
        "Context:\nc\n\nTask: Q?\nSQL table: " + SCHEMA + "\nSQL query: "
    )


def test_a_saved_older_format_without_context_slot_still_renders():
    old = PromptFormat.from_dict({"user_template": "Task: {instruction}\nSQL table: {input}\n"})
    assert user_message("Q?", SCHEMA, context="c", fmt=old) == (
        "Context:\nc\n\nTask: Q?\nSQL table: " + SCHEMA + "\n"
    )


def test_messages_start_with_the_seed_system_prompt():
    msgs = build_messages("Q?", SCHEMA)
    assert msgs[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert [m["role"] for m in msgs] == ["system", "user"]


def test_history_gives_schema_once_and_earlier_sql_as_assistant_turns():
    msgs = build_messages(
        "And in France?",
        SCHEMA,
        history=[("How many customers?", "SELECT count(*) FROM customers")],
    )
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert SCHEMA in msgs[1]["content"]
    assert msgs[2]["content"] == "SELECT count(*) FROM customers"
    assert msgs[3]["content"] == "Task: And in France?\nSQL query: "


def test_repair_messages_carry_the_failed_sql_and_error():
    msgs = build_repair_messages(
        build_messages("Q?", SCHEMA), "SELECT nme FROM customers", "Unknown column: nme"
    )
    assert msgs[-2] == {"role": "assistant", "content": "SELECT nme FROM customers"}
    assert "Unknown column: nme" in msgs[-1]["content"]
    assert "SELECT nme FROM customers" in msgs[-1]["content"]


def test_training_example_is_prompt_completion():
    ex = build_training_example("Q?", SCHEMA, " SELECT 1 ")
    assert ex["prompt"] == build_messages("Q?", SCHEMA)
    assert ex["completion"] == [{"role": "assistant", "content": "SELECT 1"}]


def test_prompt_format_roundtrip():
    fmt = PromptFormat(system="x")
    assert PromptFormat.from_dict(fmt.to_dict()) == fmt
    assert PromptFormat.from_dict({**fmt.to_dict(), "unknown": 1}) == fmt


def test_llama2_rendering_exact(tiny_llama):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    assert tok.chat_template == LLAMA2_CHAT_TEMPLATE
    text = render_prompt(tok, build_messages("Q?", SCHEMA))
    assert text == (
        "<s>[INST] <<SYS>>\n" + SYSTEM_PROMPT + "\n<</SYS>>\n\n"
        "SQL table: " + SCHEMA + "\n\nTask: Q?\nSQL query:  [/INST]"
    )


def test_tokenizer_without_template_gets_llama2(tiny_llama):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    tok.chat_template = None
    assert render_prompt(tok, build_messages("Q?", SCHEMA)).startswith("<s>[INST] <<SYS>>")


def test_one_renderer_needs_no_model(tmp_path):
    """``Prompter`` writes a question's prompt from a format, a budget and a token count: the
    answer loop's ``build_messages`` is this renderer over its backend, and training renders
    with it directly, no stand-in backend needed."""
    from engine.db import open_database
    from engine.pipeline import TextToSQL
    from engine.prompt import Prompter, prompt_budget
    from tests.helpers import ScriptedBackend, customers_db

    db = open_database(customers_db(tmp_path / "c.sqlite"))
    schema = db.read_schema()
    history = [("Which customers are there?", "SELECT id, name FROM customers")]
    backend = ScriptedBackend([])
    prompter = Prompter(DEFAULT_FORMAT, prompt_budget(4096, 256), backend.count_tokens)
    messages, sources = prompter.messages("and their names?", db, schema, history)
    assert (messages, sources) == TextToSQL(backend).build_messages(
        "and their names?", db, schema, history
    )
    text = json.dumps(messages)
    assert "CREATE TABLE customers" in text and "previous_result" in messages[-1]["content"]
    assert not hasattr(prompter, "generate")
