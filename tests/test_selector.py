"""Choosing among the candidates that ran (``generation.selector``) and voting on a first
answer that ran but is unsure (``generation.vote_below``), over a scripted backend whose
answers come with fixed scores."""

import json

import pytest

from engine.backends.base import GenerationConfig, Scored
from engine.config import ConfigError, EngineConfig, load_config, parse_overrides
from engine.pipeline import Request, TextToSQL
from engine.selector import choose
from tests.helpers import FakeBackend, customers_db, task_of

NAMES = "SELECT name FROM customers"
FRANCE = "SELECT name FROM customers WHERE country = 'France'"


class ScoredBackend(FakeBackend):
    """``answer(question, seed, repair)`` -> (text, mean log-probability) for each prompt
    (seed 0: the greedy candidate; repair: a repair prompt). Records each call's configs."""

    name = "scored"

    def __init__(self, answer):
        super().__init__(lambda prompt: "")
        self.reply, self.cfgs = answer, []

    def generate(self, prompts, cfg):
        return [s.text for s in self.generate_scored(prompts, cfg)]

    def generate_scored(self, prompts, cfg):
        self.calls.append(len(prompts))
        self.prompts.extend(prompts)
        self.cfgs.append(list(cfg))
        return [
            Scored(*self.reply(task_of(p), c.seed, len(json.loads(p)) > 2))
            for p, c in zip(prompts, cfg, strict=True)
        ]


def by_seed(table):
    """An ``answer`` from seed -> (text, score); other seeds write no SQL."""
    return lambda question, seed, repair: table.get(seed, ("no SQL", -5.0))


@pytest.fixture
def db(tmp_path):
    return customers_db(tmp_path / "t.sqlite")


def test_choose_weighs_groups_by_likelihood_only_when_asked_and_scored():
    groups, scores = [[0, 1], [2]], [-2.0, -2.5, -0.1]  # exp: 0.14 + 0.08 < 0.90
    assert choose(groups, scores) == 0  # the majority
    assert choose(groups, scores, "likelihood") == 1
    assert choose(groups, [-2.0, None, -0.1], "likelihood") == 0  # unscored: majority
    assert choose([[1], [0]], [-1.0, -1.0], "likelihood") == 1  # a tie: the earlier one


def test_the_likelihood_selector_prefers_a_confident_group_over_a_bigger_one(db):
    table = {0: (NAMES, -2.0), 1: (NAMES, -2.5), 2: (FRANCE, -0.1)}
    answers = {}
    for selector in ("majority", "likelihood"):
        gen = GenerationConfig(candidates=3, candidate_temperature=0.8, selector=selector)
        backend = ScoredBackend(by_seed(table))
        answers[selector] = TextToSQL(backend, generation=gen).ask("Who?", db)
    majority, likelihood = answers["majority"], answers["likelihood"]
    assert majority.sql == NAMES and majority.votes == 2 and majority.confidence == -2.0
    assert likelihood.sql == FRANCE and likelihood.votes == 1 and likelihood.confidence == -0.1
    assert majority.greedy_confidence == likelihood.greedy_confidence == -2.0


def test_scores_change_no_answer_and_no_prompt_by_default(db):
    """The defaults serve what a backend without scores serves, from the same prompts and
    settings; only the confidence is new."""
    table = {0: (NAMES, -2.0), 1: (NAMES, -2.5), 2: (FRANCE, -0.1)}
    gen = GenerationConfig(candidates=3, candidate_temperature=0.8)
    scored, plain = ScoredBackend(by_seed(table)), ScoredBackend(by_seed(table))
    plain.generate_scored = None  # a backend without the method
    plain.generate = lambda prompts, cfg: [
        s.text for s in ScoredBackend.generate_scored(plain, prompts, cfg)
    ]
    ours, theirs = (TextToSQL(b, generation=gen).ask("Who?", db) for b in (scored, plain))
    assert (ours.sql, ours.rows, ours.votes) == (theirs.sql, theirs.rows, theirs.votes)
    assert scored.prompts == plain.prompts and scored.cfgs == plain.cfgs
    assert (ours.confidence, theirs.confidence) == (-2.0, None)


def cascade(vote_below=-0.5, **changes):
    values = dict(candidates=1, retry_candidates=3, candidate_temperature=0.8, seed=0)
    return GenerationConfig(**{**values, **changes}, vote_below=vote_below)


def test_an_unsure_first_answer_that_ran_draws_voters_and_a_sure_one_does_not(db):
    four = {2: ("SELECT 4", -0.3), 3: ("SELECT 2 + 2", -0.4)}
    backend = ScoredBackend(by_seed({0: ("SELECT count(*) FROM customers", -1.0), **four}))
    answer = TextToSQL(backend, generation=cascade()).ask("How many?", db)
    assert backend.calls == [1, 2]  # the greedy answer, then two fresh samples beside it
    assert [(c.temperature, c.seed) for c in backend.cfgs[1]] == [(0.8, 2), (0.8, 3)]
    assert backend.prompts[1:] == [backend.prompts[0]] * 2  # the question's own prompt
    assert answer.rows == [[4]] and (answer.attempts, answer.candidates, answer.votes) == (2, 3, 2)
    assert (answer.greedy_confidence, answer.confidence) == (-1.0, -0.3)

    backend = ScoredBackend(by_seed({0: ("SELECT count(*) FROM customers", -0.2), **four}))
    answer = TextToSQL(backend, generation=cascade()).ask("How many?", db)
    assert backend.calls == [1] and answer.rows == [[3]]
    assert (answer.attempts, answer.candidates, answer.votes) == (1, 1, 1)


def test_the_unsure_answer_votes_too_and_wins_a_tie(db):
    table = {0: ("SELECT 3", -1.0), 2: ("SELECT 4", -0.3), 3: ("SELECT 5", -0.3)}
    backend = ScoredBackend(by_seed(table))
    answer = TextToSQL(backend, generation=cascade()).ask("How many?", db)
    assert answer.rows == [[3]] and (answer.attempts, answer.candidates, answer.votes) == (2, 3, 1)
    assert answer.confidence == -1.0


@pytest.mark.parametrize(
    ("gen", "score"),
    [(cascade(vote_below=None), -3.0), (cascade(), None)],
    ids=["gate off", "no score"],
)
def test_no_gate_when_off_or_unscored(db, gen, score):
    backend = ScoredBackend(by_seed({0: ("SELECT 3", score), 2: ("SELECT 4", -0.1)}))
    answer = TextToSQL(backend, generation=gen).ask("How many?", db)
    assert backend.calls == [1] and answer.rows == [[3]] and answer.attempts == 1


def test_unsure_and_failed_answers_draw_their_voters_in_one_call(db):
    def answer(question, seed, repair):
        if question == "Broken?":
            return ("SELECT count(*) FROM customers", -0.1) if repair else ("SELECT nme", -0.1)
        return ("SELECT 3", -1.0) if seed == 0 else ("SELECT 4", -0.2)

    backend = ScoredBackend(answer)
    engine = TextToSQL(backend, generation=cascade(), max_attempts=2)
    broken, unsure = engine.ask_batch([Request("Broken?", db), Request("Unsure?", db)])
    assert backend.calls == [2, 3 + 2]  # the repair and 2 samples; 2 samples beside the kept
    assert broken.rows == [[3]] and broken.attempts == 2 and broken.confidence == -0.1
    assert unsure.rows == [[4]] and (unsure.candidates, unsure.votes) == (3, 2)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["generation.selector=best"], "selector"),
        (["generation.vote_below=0.5"], "vote_below"),
        (["generation.vote_below=-1", "generation.candidates=3"], "vote_below"),
        (["generation.vote_below=-1", "generation.retry_candidates=1"], "vote_below"),
        (["generation.vote_below=-1", "max_attempts=1"], "max_attempts"),
    ],
)
def test_settings_the_gate_cannot_work_with_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(EngineConfig, None, parse_overrides(overrides))


def test_the_defaults_are_todays_rule():
    gen = EngineConfig().generation
    assert (gen.selector, gen.vote_below) == ("majority", None)
    gated = load_config(EngineConfig, None, {"generation.vote_below": -0.4})
    assert gated.generation.vote_below == -0.4 and gated.generation.retry_candidates == 5
