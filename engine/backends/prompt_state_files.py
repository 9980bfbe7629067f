"""Prompt-cache states on disk, shared by every process of the machine that runs one model.

A database's first question evaluates its whole prompt: the system prompt, the schema and its
sample values, several hundred tokens, about a minute for the 1.5B on a slow 2-core machine.
The app keeps that state in memory (:mod:`engine.backends.llamacpp_batch`), but every new
process paid for it again: each ``python -m engine ask``, an evaluation child, the app after a
restart. Here a state is written once to ``cache_dir()/prompt-states``, and any later process
of the same model restores the longest prefix it shares with its prompt, as the decoder does
with the states it keeps in memory.

A state holds exactly the KV cache of its tokens, so a restore gives what evaluating them would
(the decoder's tests compare both). Its folder is named for everything the cache depends on: the
GGUF file and the LoRA adapter (path, size, modification time), llama-cpp-python's version and
the context's settings. A file that llama.cpp refuses is deleted and the prompt evaluated. Each
file is written whole (a temporary file, then a rename), and the oldest go beyond
``LIMIT_MB``.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LIMIT_MB = 1024  # per model: a state is ~30 KB per prompt token for the 1.5B, ~10 for 135M
MIN_TOKENS = 256  # a shorter prompt is evaluated again in about the time a file takes to read
_MAGIC = b"T2SQLKV1"


def folder_for(root: Path, gguf: Path, lora: Path | None, settings: dict[str, Any]) -> Path:
    """``root``/<hash of what a state depends on>."""
    import llama_cpp  # optional: llama-cpp-python may be absent (~250 ms)

    def stamp(path: Path | None) -> list[Any] | None:
        if path is None:
            return None
        st = path.stat()
        return [str(path.resolve()), st.st_size, st.st_mtime_ns]

    identity = {
        "gguf": stamp(gguf),
        "lora": stamp(lora),
        "llama_cpp": llama_cpp.__version__,
        **settings,
    }
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return root / f"{gguf.stem[:40]}-{digest}"


class StateFiles:
    """The states of one model and context kind: token prefix -> file."""

    def __init__(self, folder: Path, limit_mb: float = LIMIT_MB) -> None:
        self.folder = folder
        self.limit_mb = limit_mb
        self._known: dict[tuple[int, ...], Path] | None = None

    def prefixes(self) -> list[tuple[int, ...]]:
        """The token prefixes with a state on disk (read once, then kept up to date)."""
        if self._known is None:
            self._known = {}
            for path in sorted(self.folder.glob("*.kv")):
                tokens = _read_tokens(path)
                if tokens is not None:
                    self._known[tokens] = path
        return list(self._known)

    def read(self, key: tuple[int, ...]) -> Any:
        """The state saved for ``key`` as a ctypes buffer, or None (gone or damaged)."""
        path = (self._known or {}).get(key)
        if path is None:
            return None
        try:
            data = path.read_bytes()
            os.utime(path)  # recently used: the last to go
        except OSError:
            self.forget(key)
            return None
        offset = len(_MAGIC) + 4 + 4 * len(key)
        if data[: len(_MAGIC)] != _MAGIC or len(data) <= offset:
            self.forget(key, delete=True)
            return None
        return (ctypes.c_uint8 * (len(data) - offset)).from_buffer_copy(data, offset)

    def write(self, key: Sequence[int], state: Any) -> None:
        """Keep ``state`` (a ctypes buffer) for the token prefix ``key``; errors only logged."""
        key = tuple(key)
        if self._known is not None and key in self._known:
            return
        tokens = struct.pack(f"<{len(key)}i", *key)
        path = self.folder / (hashlib.sha1(tokens).hexdigest()[:24] + ".kv")
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(_MAGIC + struct.pack("<I", len(key)) + tokens)
                f.write(memoryview(state).cast("B"))
            tmp.replace(path)
        except OSError as err:
            log.warning("Could not keep a prompt state in %s: %s", self.folder, err)
            tmp.unlink(missing_ok=True)
            return
        if self._known is not None:
            self._known[key] = path
        self._trim()

    def forget(self, key: tuple[int, ...], delete: bool = False) -> None:
        path = (self._known or {}).pop(key, None)
        if delete and path is not None:
            path.unlink(missing_ok=True)

    def _trim(self) -> None:
        files = []
        for path in self.folder.glob("*.kv"):
            try:
                st = path.stat()
            except OSError:
                continue
            files.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.limit_mb * 2**20:
                break
            path.unlink(missing_ok=True)
            total -= size
            if self._known is not None:
                for key in [k for k, p in self._known.items() if p == path]:
                    del self._known[key]


def _read_tokens(path: Path) -> tuple[int, ...] | None:
    try:
        with open(path, "rb") as f:
            head = f.read(len(_MAGIC) + 4)
            if len(head) < len(_MAGIC) + 4 or head[: len(_MAGIC)] != _MAGIC:
                return None
            (n,) = struct.unpack("<I", head[len(_MAGIC) :])
            raw = f.read(4 * n)
            if len(raw) != 4 * n:
                return None
            return struct.unpack(f"<{n}i", raw)
    except OSError:
        return None
