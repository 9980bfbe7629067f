"""The Blocks app: builds the tabs and launches the one server process."""

from __future__ import annotations

import argparse
import logging

from engine.config import EngineConfig, load_config, parse_overrides

TITLE = "Text-to-SQL Workbench"


def build_app(cfg: EngineConfig | None = None):  # -> gr.Blocks
    import gradio as gr

    from app import chat_tab
    from app.engines import EnginePool

    pool = EnginePool(cfg or EngineConfig())
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nAsk questions about a SQLite database in plain language.")
        with gr.Tab("Chat", id="chat"):
            chat_tab.build(pool)
    demo.pool = pool  # type: ignore[attr-defined]
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Start the text-to-SQL workbench in the browser.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: local only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--auth", help="user:password required to open the app")
    p.add_argument("--model", help="default model (preset, folder or hub id)")
    p.add_argument("--config", help="engine YAML config")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
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
    demo = build_app(cfg)
    demo.queue(default_concurrency_limit=4).launch(
        server_name=args.host, server_port=args.port, auth=auth, show_error=True
    )
