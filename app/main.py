"""The Blocks app: builds the tabs and launches the one server process."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace

from app.databases import databases_of, default_database
from app.mcp_sign_in import mcp_sign_in, sign_in_loopback
from app.messages import public
from app.model_choices import model_choices
from app.recovery import check_indexes, clean_upload_temps
from app.users import (
    AuthError,
    CurrentExamples,
    CurrentHistory,
    Spaces,
    exposure_warning,
    read_auth,
    root_of,
)
from engine.config import EngineConfig, add_setting_flags, flag_overrides, load_config
from engine.paths import data_dir
from training.jobs import JobManager

TITLE = "Text-to-SQL Workbench"


def build_app(
    cfg: EngineConfig | None = None,
    warm_up: bool = False,
    *,
    signed_in: bool = False,
    warning: str | None = None,
    max_batch: int = 1,
):  # -> gr.Blocks
    """The app. ``signed_in``: users sign in (--auth) and each keeps their data apart;
    ``warning``: shown under the title; ``max_batch``: questions decoded together."""
    # deferred: gradio takes seconds to import; the tabs import it, app.engines the backends
    import gradio as gr

    from app import api, chat_tab, eval_tab, install_panel, schema_tab, train_tab
    from app.engines import EnginePool  # late: a test replaces EnginePool

    pool = EnginePool(cfg or EngineConfig(), max_batch=max_batch)
    notes = recover(pool)
    jobs = JobManager()  # one training job per app process
    spaces = Spaces(pool.base.rag, pool.base.timeout_s, signed_in=signed_in)
    # Each event works on its user's pairs and history (one local user without --auth).
    examples, history = CurrentExamples(spaces), CurrentHistory(spaces)
    if warm_up:
        dbs = databases_of(spaces.current())  # outside any event: no signed-in user's
        pool.warm_up(dbs.get(default_database(dbs) or ""))

    def refresh_models():  # the caller's adapters (with sign-in, each user trains their own)
        return _refresh_models(spaces.current())

    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nAsk questions about a SQLite database in plain language.")
        if warning:
            gr.Markdown(f"**{warning}**", elem_id="exposure-warning")
        if notes:
            gr.Markdown("\n".join(f"- {public(n)}" for n in notes), elem_id="recovery-notes")
        model_status = gr.Markdown(public(pool.status), elem_id="model-status")
        # The line is polled every 2 s only while it may change by itself (a model loading,
        # a database being primed, an index rebuilt), not for as long as a page is open:
        # an idle page costs the app nothing. A question or a database choice starts it.
        status_timer = gr.Timer(2.0, active=False)
        status = [model_status, status_timer]

        def poll(watch: bool = False):
            return public(pool.status), gr.Timer(active=watch or pool.busy)

        status_timer.tick(poll, None, status, show_progress="hidden")
        installed = install_panel.build(pool, show_button=not signed_in)
        if installed is not None:  # the default model then loads: follow the status line
            installed.then(lambda: poll(watch=True), None, status, show_progress="hidden")
        demo.load(poll, None, status, show_progress="hidden")
        with gr.Tab("Chat", id="chat"):
            chat = chat_tab.ChatTab(pool, examples, history, spaces)
            chat_db, chat_model = chat.build()
        with gr.Tab("Schema", id="schema") as schema:
            panel = schema_tab.build(pool, examples, [chat_db], demo, spaces)
        with gr.Tab("Training", id="training"):
            runs_finished = train_tab.build(jobs, demo, spaces)
        with gr.Tab("Evaluation", id="evaluation"):
            eval_models = eval_tab.build(pool.base, demo, spaces)
        for event in chat.loads_models:
            event.then(poll, None, status, show_progress="hidden")
        for asked in (chat.send.click, chat.question.submit):  # a model may load meanwhile
            asked(lambda: poll(watch=True), None, status, queue=False, show_progress="hidden")
        # A finished training run's adapter shows up in the chat and evaluation model lists.
        for event in runs_finished:
            event.then(refresh_models, None, [chat_model, eval_models])
        # Evaluation measures the model the chat serves unless told otherwise.
        chat_model.change(lambda m: gr.update(value=[m] if m else []), chat_model, eval_models)
        # Each new page sees databases uploaded since the app started, and its history.
        demo.load(lambda: gr.update(choices=list(chat.databases())), None, chat_db)
        demo.load(chat.past.refresh, chat_db, chat.past.outputs)
        # and its user's adapters
        demo.load(refresh_models, None, [chat_model, eval_models])
        # Pairs saved from the chat show up in the examples manager.
        schema.select(panel.refresh, [panel.db, panel.search], panel.outputs)
        api.register(pool, spaces.for_request)
    api.hide_internal(demo)
    demo.pool = pool  # type: ignore[attr-defined]
    return demo


def recover(pool) -> list[str]:
    """Clean up after an app that was killed mid-work (app.recovery); returns what was
    found, for the page. Rebuilt indexes are reported in the status line when done."""
    notes = []
    removed = clean_upload_temps(data_dir())
    if removed:
        notes.append(
            f"Removed {len(removed)} unfinished upload file(s) left by an interrupted import."
        )

    def say(message: str) -> None:
        pool.status = message

    rags = [pool.base.rag] + [  # and signed-in users' own stores (app.users)
        replace(pool.base.rag, store_dir=str(store))
        for store in sorted((data_dir() / "users").glob("*/vector_db/chroma"))
    ]
    for rag in rags:
        notes += check_indexes(rag, say).notes
    return notes


def _refresh_models(space):
    import gradio as gr  # deferred: gradio takes seconds to import

    choices = model_choices(root_of(space))
    return gr.update(choices=choices), gr.update(choices=choices)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Start the text-to-SQL workbench in the browser.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: local only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument(
        "--auth",
        metavar="NAME",
        help="sign-in required: user NAME, password from $TEXT2SQL_PASSWORD",
    )
    p.add_argument("--auth-file", metavar="FILE", help="sign-in required: name:password lines")
    p.add_argument(
        "--batch",
        type=int,
        default=1,
        metavar="N",
        help="questions from different sessions decoded together (default 1)",
    )
    p.add_argument("--config", help="engine YAML config (python -m engine config lists all)")
    add_setting_flags(p, EngineConfig, ["model"])
    p.add_argument(
        "--mcp",
        action="store_true",
        help="also serve /databases, /ask and /run_sql to MCP clients at /gradio_api/mcp/ "
        "(behind the same sign-in); off by default",
    )
    p.add_argument(
        "--no-warm-up",
        action="store_true",
        help="load the model at the first question, not at start",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(EngineConfig, args.config, flag_overrides(args))
    try:
        auth = read_auth(args.auth, args.auth_file)
    except AuthError as err:
        raise SystemExit(str(err)) from None
    warning = exposure_warning(args.host, auth is not None)
    if warning:
        logging.getLogger(__name__).warning(warning)
    demo = build_app(
        cfg,
        warm_up=not args.no_warm_up,
        signed_in=auth is not None,
        warning=warning,
        max_batch=args.batch,
    )
    demo.queue(default_concurrency_limit=4).launch(
        server_name=args.host,
        server_port=args.port,
        auth=auth,
        show_error=True,
        mcp_server=args.mcp,
        app_kwargs=mcp_sign_in(auth) if args.mcp else None,
        prevent_thread_lock=bool(args.mcp and auth),
    )
    if args.mcp and auth:
        sign_in_loopback(demo)
        demo.block_thread()
