"""A sentence-transformers model of the common shape, run with transformers alone.

Most sentence-embedding folders (the bundled all-MiniLM-L6-v2 among them) are a transformer,
mean pooling over its tokens and an L2 normalisation. Importing ``sentence_transformers``
to run that also imports scikit-learn, PEFT and bitsandbytes: seconds at the start of every
process that embeds (the app's first question, each evaluation and training child). This
module computes the same vectors from ``transformers`` directly; a folder of any other shape
(CLS pooling, a dense layer, prompts) is left to sentence-transformers
(:func:`engine.rag.embeddings.get_embeddings` chooses).
"""

from __future__ import annotations

import json
from pathlib import Path

from langchain_core.embeddings import Embeddings

_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"


def mean_pooling_length(folder: str | Path) -> int | None:
    """The folder's maximum sequence length when it is a transformer, mean pooling and
    (optionally) normalisation, nothing else; ``None`` for any other folder."""
    folder = Path(folder)
    try:
        modules = json.loads((folder / "modules.json").read_text())
        kinds = [m["type"] for m in modules]
        if kinds not in ([_TRANSFORMER, _POOLING], [_TRANSFORMER, _POOLING, _NORMALIZE]):
            return None
        if modules[0]["path"] != "":
            return None
        pooling = json.loads((folder / modules[1]["path"] / "config.json").read_text())
        modes = {k: v for k, v in pooling.items() if k.startswith("pooling_mode_")}
        if modes != {**dict.fromkeys(modes, False), "pooling_mode_mean_tokens": True}:
            return None
        settings = json.loads((folder / "sentence_bert_config.json").read_text())
        if settings.get("do_lower_case"):
            return None
        # no query/document prompts: those change the text a vector is computed from
        extra = folder / "config_sentence_transformers.json"
        if extra.is_file() and json.loads(extra.read_text()).get("prompts"):
            return None
        return int(settings["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


class MeanPooledEmbeddings(Embeddings):
    """LangChain embeddings: token vectors of the transformer, averaged over the attention
    mask, L2-normalised (what sentence-transformers computes for such a folder)."""

    def __init__(self, folder: str | Path, max_length: int, batch_size: int = 32) -> None:
        from transformers import AutoModel, AutoTokenizer  # deferred: seconds to import

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder)).eval()
        self.max_length = max_length
        self.batch_size = batch_size

    def _embed(self, texts: list[str]) -> list[list[float]]:
        import torch  # deferred: torch takes seconds to import

        # longest first, as sentence-transformers batches: texts of similar length share a
        # batch, so little of it is padding (a third faster on questions of mixed length)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), self.batch_size):
            chosen = order[start : start + self.batch_size]
            batch = [str(texts[i]).strip() for i in chosen]
            encoded = self.tokenizer(batch, padding=True, truncation="longest_first",
                                     max_length=self.max_length, return_tensors="pt")  # fmt: skip
            with torch.inference_mode():
                tokens = self.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            for i, vector in zip(chosen, torch.nn.functional.normalize(mean, p=2, dim=1).tolist(),
                                 strict=True):  # fmt: skip
                vectors[i] = vector
        return vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embed(list(texts))

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text])[0]


def load(folder: str | Path) -> MeanPooledEmbeddings | None:
    """The embeddings for ``folder`` when it has the common shape, else ``None``."""
    length = mean_pooling_length(folder)
    if length is None:
        return None
    return MeanPooledEmbeddings(folder, length)
