"""EnginePool.answer: questions asked at once by several sessions are decoded together, and
each caller gets the answer to its own question."""

import threading

from app.engines import EnginePool
from engine.config import EngineConfig
from engine.paths import sample_databases
from engine.pipeline import Request, TextToSQL
from tests.helpers import EchoBackend


def _ask_all(pool, engine, asks):
    answers = {}

    def one(tag, db):
        answers[tag] = pool.answer(engine, Request(f"Echo {tag}", db))

    threads = [threading.Thread(target=one, args=a) for a in asks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


def test_concurrent_questions_share_batches_and_get_their_own_answers():
    dbs = sample_databases()
    backend = EchoBackend()
    engine = TextToSQL(backend, max_attempts=1)
    pool = EnginePool(EngineConfig(model="echo"), max_batch=4)
    asks = [(f"question-{i}", dbs["shop"] if i % 2 else dbs["hr"]) for i in range(12)]
    answers = _ask_all(pool, engine, asks)
    assert len(answers) == 12
    for tag, _ in asks:
        assert answers[tag].question == f"Echo {tag}"
        assert answers[tag].rows == [[tag]] or answers[tag].rows == [(tag,)], answers[tag]
    assert max(backend.calls) > 1 and max(backend.calls) <= 4  # batched, never over the cap
    assert sum(backend.calls) == 12
    for batch in backend.batches:  # one database per batch: they share the schema prompt
        assert len({"customers" in p for p in batch}) == 1


def test_one_at_a_time_by_default():
    backend = EchoBackend()
    engine = TextToSQL(backend, max_attempts=1)
    pool = EnginePool(EngineConfig(model="echo"))
    shop = sample_databases()["shop"]
    answers = _ask_all(pool, engine, [(f"question-{i}", shop) for i in range(4)])
    assert backend.calls == [1, 1, 1, 1]
    assert sorted(a.question for a in answers.values()) == [f"Echo question-{i}" for i in range(4)]
