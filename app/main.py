"""The Blocks app: builds the tabs and launches the one server process."""

from __future__ import annotations

import argparse
import logging

from engine.config import EngineConfig, load_config, parse_overrides

TITLE = "Text-to-SQL Workbench"


def build_app(cfg: EngineConfig | None = None, warm_up: bool = False):  # -> gr.Blocks
    import gradio as gr

    from app import chat_tab, eval_tab, schema_tab, train_tab
    from app.databases import database_choices, default_database
    from app.engines import EnginePool
    from app.messages import public
    from engine.history import QuestionHistory
    from engine.paths import data_dir
    from engine.rag.examples import SavedExamples
    from training.jobs import JobManager

    pool = EnginePool(cfg or EngineConfig())
    jobs = JobManager()  # one training job per app process
    # Saved pairs and question history live in the data folder (one user's folder, later).
    examples = SavedExamples(pool.base.rag, data_dir(), timeout_s=pool.base.timeout_s)
    history = QuestionHistory(data_dir())
    if warm_up:
        pool.warm_up(database_choices().get(default_database(database_choices()) or ""))
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nAsk questions about a SQLite database in plain language.")
        model_status = gr.Markdown(public(pool.status), elem_id="model-status")
        gr.Timer(2.0).tick(lambda: public(pool.status), None, model_status, show_progress="hidden")
        demo.load(lambda: public(pool.status), None, model_status, show_progress="hidden")
        with gr.Tab("Chat", id="chat"):
            chat = chat_tab.ChatTab(pool, examples, history)
            chat_db, chat_model = chat.build()
        with gr.Tab("Schema", id="schema") as schema:
            panel = schema_tab.build(pool, examples, [chat_db], demo)
        with gr.Tab("Training", id="training"):
            runs_finished = train_tab.build(jobs)
        with gr.Tab("Evaluation", id="evaluation"):
            eval_models = eval_tab.build(pool.base)
        # A finished training run's adapter shows up in the chat and evaluation model lists.
        for event in runs_finished:
            event.then(_refresh_models, None, [chat_model, eval_models])
        # Evaluation measures the model the chat serves unless told otherwise.
        chat_model.change(lambda m: gr.update(value=[m] if m else []), chat_model, eval_models)
        # Each new page sees databases uploaded since the app started, and its history.
        demo.load(lambda: gr.update(choices=list(database_choices())), None, chat_db)
        demo.load(chat.past.refresh, chat_db, chat.past.outputs)
        # Pairs saved from the chat show up in the examples manager.
        schema.select(panel.refresh, [panel.db, panel.search], panel.outputs)
    demo.pool = pool  # type: ignore[attr-defined]
    return demo


def _refresh_models():
    import gradio as gr

    from app.model_choices import model_choices

    choices = model_choices()
    return gr.update(choices=choices), gr.update(choices=choices)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Start the text-to-SQL workbench in the browser.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: local only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--auth", help="user:password required to open the app")
    p.add_argument("--model", help="default model (preset, folder or hub id)")
    p.add_argument("--config", help="engine YAML config")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    p.add_argument(
        "--no-warm-up",
        action="store_true",
        help="load the model at the first question, not at start",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides = parse_overrides(args.set)
    if args.model:
        overrides["model"] = args.model
    cfg = load_config(EngineConfig, args.config, overrides)
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep:
            raise SystemExit("--auth expects user:password")
        auth = (user, password)
    demo = build_app(cfg, warm_up=not args.no_warm_up)
    demo.queue(default_concurrency_limit=4).launch(
        server_name=args.host, server_port=args.port, auth=auth, show_error=True
    )
