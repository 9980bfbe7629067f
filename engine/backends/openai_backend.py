"""Generation on an OpenAI-compatible server: vLLM, llama.cpp's server, Ollama, LM Studio or a
hosted API, through the maintained ``openai`` client.

The engine's own messages (system prompt, schema, retrieved notes, question, repair turns)
go to the chat completions endpoint as they are; the server applies the model's chat template.
Each candidate answer is one request with its own sampling settings and seed (servers differ
in whether they honour ``n``; separate requests work everywhere and stay reproducible), sent
concurrently, at most ``openai.max_concurrency`` at a time for the whole backend. Generation
stops at the first ``;`` (the end of the SQL statement) or the token limit.

What goes wrong comes back as one line naming the server: connection refused, a refused key
(401/403), an unknown model (404), a timeout, a malformed reply. The API key is read from the
environment variable ``openai.api_key_env`` names and never logged.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engine.backends.base import GenerationConfig, Scored, per_prompt
from engine.backends.openai_config import OpenAIConfig
from engine.errors import ModelLoadError
from engine.progress import say
from engine.prompt import DEFAULT_FORMAT, Message, PromptFormat

log = logging.getLogger(__name__)
NAME = "openai"
STOP = [";"]  # the end of the SQL statement (the engine's checks read it without the ';')
CHARS_PER_TOKEN = 3  # a cautious estimate for code and English; the server's tokenizer is remote


class RemoteError(RuntimeError):
    """A request to the server failed; the message is one line and names the server."""


class OpenAIBackend:
    """The :class:`engine.backends.base.Backend` interface over an OpenAI-compatible server.

    ``render`` gives the messages themselves as JSON (the server renders the chat template),
    so the engine's answer loop runs unchanged on top of it.
    """

    def __init__(
        self, client: Any, cfg: OpenAIConfig, model: str, prompt_format: PromptFormat | None = None
    ) -> None:
        self.client = client
        self.cfg = cfg
        self.model = model
        self.name = f"{NAME}:{model} @ {cfg.base_url}"  # the chat shows which server answered
        self.prompt_format = prompt_format or DEFAULT_FORMAT
        self._pool = ThreadPoolExecutor(cfg.max_concurrency, thread_name_prefix="openai")
        self._no_logprobs = False  # set once the server refused a request for them

    @property
    def context_length(self) -> int:
        return self.cfg.context_length

    def render(self, messages: list[Message]) -> str:
        return json.dumps(messages, ensure_ascii=False)

    def count_tokens(self, text: str) -> int:
        return len(text) // CHARS_PER_TOKEN + 1

    def generate(
        self, prompts: list[str], cfg: GenerationConfig | Sequence[GenerationConfig]
    ) -> list[str]:
        """One request per prompt, concurrently; raises :class:`RemoteError` if any fails."""
        cfgs = per_prompt(cfg, len(prompts))
        return [s.text for s in self._pool.map(self._complete, prompts, cfgs)]

    def generate_scored(
        self, prompts: list[str], cfg: GenerationConfig | Sequence[GenerationConfig]
    ) -> list[Scored]:
        """:meth:`generate` asking the server for the tokens' log-probabilities too (as the
        server computes them); a server that sends none, or refuses the request for them,
        gives texts without scores (None)."""
        cfgs = per_prompt(cfg, len(prompts))
        return list(self._pool.map(lambda p, c: self._complete(p, c, True), prompts, cfgs))

    def _complete(self, prompt: str, cfg: GenerationConfig, scores: bool = False) -> Scored:
        import openai  # deferred: openai takes ~1.5 s to import

        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": json.loads(prompt),
            "max_tokens": cfg.max_new_tokens,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "seed": cfg.seed,
        }
        if cfg.stop_at_statement_end:
            kwargs["stop"] = STOP
        if self.cfg.send_top_k and cfg.temperature > 0 and cfg.top_k > 0:
            kwargs["extra_body"] = {"top_k": cfg.top_k}
        scores = scores and not self._no_logprobs
        if scores:  # the chosen tokens' log-probabilities, no alternatives
            kwargs.update(logprobs=True, top_logprobs=0)
        try:
            reply = self.client.chat.completions.create(**kwargs)
        except openai.APIStatusError as err:
            if not scores:
                raise RemoteError(describe_error(err, self.cfg, self.model)) from err
            # Asked once more without them: a server that cannot send logprobs may refuse
            # the request (400, 422, 500...) rather than ignore the field.
            unscored = self._complete(prompt, cfg)
            log.info("%s refused logprobs; answers go unscored", _where(self.cfg))
            self._no_logprobs = True
            return unscored
        except openai.OpenAIError as err:
            raise RemoteError(describe_error(err, self.cfg, self.model)) from err
        except ValueError as err:  # a body that is not JSON at all
            raise RemoteError(_malformed(self.cfg, err)) from err
        try:
            text = reply.choices[0].message.content
        except (AttributeError, IndexError, KeyError, TypeError) as err:
            raise RemoteError(_malformed(self.cfg, err)) from err
        if not isinstance(text, str):
            raise RemoteError(_malformed(self.cfg, f"no message text in {str(reply)[:120]!r}"))
        return Scored(text, _mean_logprob(reply) if scores else None)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()


def _mean_logprob(reply: Any) -> float | None:
    """The mean of the reply's token log-probabilities; None where the server sent none."""
    try:
        values = [float(t.logprob) for t in reply.choices[0].logprobs.content]
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    return sum(values) / len(values) if values else None


def _where(cfg: OpenAIConfig) -> str:
    return f"the server at {cfg.base_url}"


def _malformed(cfg: OpenAIConfig, detail: Any) -> str:
    text = " ".join(str(detail).split())[:200]
    return f"{_where(cfg)} sent a malformed reply: {text}"


def describe_error(err: BaseException, cfg: OpenAIConfig, model: str) -> str:
    """One line for what went wrong talking to the server (never the key)."""
    import openai  # deferred: openai takes ~1.5 s to import

    where = _where(cfg)
    if isinstance(err, openai.APITimeoutError):
        return f"{where} did not answer within {cfg.timeout:g} s (openai.timeout)"
    if isinstance(err, openai.APIConnectionError):
        return f"Cannot reach {where}: {_root_cause(err)}"
    if isinstance(err, openai.AuthenticationError | openai.PermissionDeniedError):
        has_key = bool(os.environ.get(cfg.api_key_env))
        hint = (
            f"set {cfg.api_key_env} to a key it accepts"
            if not has_key
            else f"the key in {cfg.api_key_env} is not accepted"
        )
        return f"{where} refused the request ({err.status_code} {_server_message(err)}): {hint}"
    if isinstance(err, openai.NotFoundError):
        return (
            f"{where} has no model '{model}' (404 {_server_message(err)}; check openai.model, "
            "and that openai.base_url ends in /v1)"
        )
    if isinstance(err, openai.APIStatusError):
        return f"{where} answered HTTP {err.status_code}: {_server_message(err)}"
    if isinstance(err, openai.APIResponseValidationError):
        return _malformed(cfg, err)
    return f"{where}: {type(err).__name__}: {' '.join(str(err).split())[:200]}"


def _server_message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") or inner.get("detail") if isinstance(inner, dict) else inner
        if message:
            return " ".join(str(message).split())[:160]
    return " ".join(str(getattr(err, "message", "") or err).split())[:160]


def _root_cause(err: BaseException) -> str:
    """The innermost cause ("connection refused", a DNS failure...), lower-cased, one line."""
    seen = err
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
    text = " ".join(str(seen).split()) or type(seen).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text[:200]


def connect(cfg: OpenAIConfig, progress: Any = None) -> OpenAIBackend:
    """A backend for the configured server, checked first: the server answers, accepts the
    key and serves the model (``openai.model``, or the only one it lists when empty).

    Raises :class:`engine.errors.ModelLoadError` with one line naming the server otherwise.
    """
    import openai  # deferred: openai takes ~1.5 s to import

    if not cfg.base_url:
        raise ModelLoadError(
            "backend openai needs openai.base_url (e.g. --set openai.base_url="
            "http://127.0.0.1:8000/v1); nothing is sent anywhere without it"
        )
    # The key only from the named variable: never the client's own OPENAI_* fallbacks, so a
    # hosted-API key is not sent to a server it was not meant for. Local servers need none.
    key = os.environ.get(cfg.api_key_env) or "no-key"
    client = openai.OpenAI(
        base_url=cfg.base_url,
        api_key=key,
        timeout=cfg.timeout,
        max_retries=0,  # a failure is reported at once, in one line
    )
    for inferred in ("organization", "project", "admin_api_key"):  # read from OPENAI_* vars
        if hasattr(client, inferred):
            setattr(client, inferred, None)
    quiet = logging.getLogger("httpx2")  # the client's transport logs every request at INFO
    if quiet.level == logging.NOTSET:
        quiet.setLevel(logging.WARNING)
    say(progress, f"Connecting to {_where(cfg)}", log)
    try:
        served = [m.id for m in client.models.list()]
    except openai.OpenAIError as err:
        client.close()
        raise ModelLoadError(describe_error(err, cfg, cfg.model or "?")) from err
    except (ValueError, AttributeError, TypeError) as err:
        client.close()
        raise ModelLoadError(_malformed(cfg, err)) from err
    model = cfg.model
    if not model:
        if len(served) != 1:
            client.close()
            raise ModelLoadError(
                f"{_where(cfg)} serves {len(served)} models ({', '.join(served[:10])}): "
                "choose one with openai.model"
            )
        model = served[0]
    elif model not in served:
        client.close()
        raise ModelLoadError(
            f"{_where(cfg)} has no model '{model}' (it serves: {', '.join(served[:10]) or 'none'})"
        )
    return OpenAIBackend(client, cfg, model)
