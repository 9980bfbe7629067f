"""Settings of the remote backend (the ``openai:`` section of configs/engine.yaml).

Any OpenAI-compatible server: vLLM (``vllm serve``), llama.cpp's server (``python -m
llama_cpp.server``), Ollama, LM Studio or a hosted API. Nothing is sent anywhere unless
``base_url`` is set and ``backend: openai`` is chosen. The API key itself is never a
setting: ``api_key_env`` names the environment variable that holds it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import ConfigError
from engine.setting import setting

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class OpenAIConfig:
    base_url: str = setting(
        "", "the server's URL, e.g. http://127.0.0.1:8000/v1; empty: none (nothing is sent)"
    )
    model: str = setting("", "the server's model name; empty: the only model the server lists")
    api_key_env: str = setting(
        "OPENAI_API_KEY", "environment variable holding the key (may be unset), never the key"
    )
    timeout: float = setting(60.0, "seconds per request")
    max_concurrency: int = setting(4, "requests in flight at once (candidates, evaluation batches)")
    # The retriever sizes prompts by it; tokens are estimated from characters, as the
    # server's tokenizer is not at hand.
    context_length: int = setting(8192, "prompt + answer tokens the server's context holds")
    # top_k is no OpenAI parameter; vLLM, llama.cpp and Ollama accept it, hosted APIs may not.
    send_top_k: bool = setting(True, "send top_k for sampled candidates (false: hosted APIs)")

    def __post_init__(self) -> None:
        if self.base_url and not re.match(r"^https?://", self.base_url):
            raise ConfigError(
                f"openai.base_url must start with http:// or https://; got {self.base_url!r}"
            )
        if not _ENV_NAME.fullmatch(self.api_key_env or ""):
            # the value is not echoed: it may be the key itself, pasted in the wrong place
            raise ConfigError(
                "openai.api_key_env must be the name of an environment variable (letters, "
                "digits, _); the key itself never goes in a config"
            )
        if self.timeout <= 0:
            raise ConfigError("openai.timeout must be > 0 seconds")
        if self.max_concurrency < 1:
            raise ConfigError("openai.max_concurrency must be at least 1")
        if self.context_length < 512:
            raise ConfigError("openai.context_length must be at least 512 tokens")
