"""The same RAG code against a real Chroma server (``chroma run``) started by the test."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from engine.rag.config import RagConfig

REPO = Path(__file__).resolve().parent.parent
CHROMA = Path(sys.executable).with_name("chroma")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    exe = str(CHROMA) if CHROMA.is_file() else shutil.which("chroma")
    if exe is None:
        pytest.skip("the chroma CLI (chromadb package) is not installed")
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.Popen(
        [exe, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                url = f"http://127.0.0.1:{port}/api/v2/heartbeat"
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"chroma run did not start (exit code {proc.poll()})")
                time.sleep(0.3)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_index_and_retrieve_through_a_chroma_server(chroma_server, tmp_path):
    from engine.rag.index import index_database
    from engine.rag.retriever import RagRetriever
    from engine.rag.store import VectorStore

    host, port = chroma_server
    cfg = RagConfig(chroma_host=host, chroma_port=port, store_dir=str(tmp_path / "unused"))
    shop = REPO / "sample_dbs" / "shop.sqlite"
    report = index_database(cfg, shop)
    assert report.tables == 6 and report.store == f"Chroma server {host}:{port}"
    index_database(cfg, shop)  # re-index replaces on the server too
    store = VectorStore(cfg)
    assert (
        store.client.get_collection(report.collection, embedding_function=None).count()
        == 6 + report.examples
    )
    hits = RagRetriever(cfg).search("Which orders were paid with paypal?", shop)
    assert [h.metadata["table"] for h in hits if h.metadata["kind"] == "table"][0] == "orders"
    assert not (tmp_path / "unused").exists()  # nothing written locally


def test_unreachable_server_is_a_clear_error():
    from engine.rag.store import StoreError, VectorStore

    with pytest.raises(StoreError, match="Cannot reach the Chroma server"):
        VectorStore(RagConfig(chroma_host="127.0.0.1", chroma_port=_free_port()))
