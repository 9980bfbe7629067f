"""Whose data a request touches: one local user, or each signed-in user apart.

Without ``--auth`` there is one local user and everything lives in the data folder, as
before. With ``--auth``, each user gets ``<data>/users/<name>/``: their uploads, saved
example pairs, question history and vector index (so a pair one user saved for a sample
database is never retrieved for another). Sample databases are shared, read-only.

Passwords come from an environment variable or a file, never from the command line (every
process on the machine can read another's arguments): ``--auth NAME`` takes the password
from ``$TEXT2SQL_PASSWORD``, ``--auth-file FILE`` reads ``name:password`` lines.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app.uploads import upload_dir
from engine.history import QuestionHistory
from engine.paths import data_dir
from engine.rag.retriever import RagRetriever
from engine.rag.saved_pairs import SavedPairs

PASSWORD_ENV = "TEXT2SQL_PASSWORD"
# With sign-in, what is built outside any user's event (the page's first lists) belongs to
# this nobody, whose folders stay empty: never the local user's uploads.
SIGNED_OUT = "(signed out)"


class AuthError(ValueError):
    """The sign-in settings cannot be used; the message says why in one line."""


@dataclass
class UserSpace:
    """One user's databases, saved pairs, history and (signed-in users) vector index."""

    name: str  # "" for the local user
    root: Path
    history: Any  # engine.history.QuestionHistory
    examples: Any  # engine.rag.saved_pairs.SavedPairs
    retriever: Any = None  # engine.rag.retriever.RagRetriever over the user's own index
    rag: Any = None  # engine.rag.config.RagConfig of the user's index (None: the app's)

    @property
    def upload_dir(self) -> Path:
        return upload_dir(self.root)


def root_of(space: UserSpace | None) -> Path:
    """The data folder of ``space``'s user; None: the local user's (the data folder)."""
    return space.root if space is not None else data_dir()


def user_root(name: str = "") -> Path:
    """The user's data folder: the data folder itself for the local user."""
    return data_dir() / "users" / user_folder(name) if name else data_dir()


@dataclass
class Spaces:
    """The app's user spaces; ``for_request(request)`` picks the caller's, ``current()`` that
    of the event being handled. The tabs take the space here and pass it down to whatever
    reads or writes a user's data (app.databases, app.uploads, app.connections, ...): no
    other module asks Gradio who is calling."""

    rag: Any  # engine.rag.config.RagConfig of the app
    timeout_s: float
    signed_in: bool = False  # --auth: each user apart
    _spaces: dict[str, UserSpace] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def for_request(self, request: Any) -> UserSpace:
        """The space of ``request``'s user (a gr.Request; None: outside any event)."""
        if not self.signed_in:
            return self.get("")
        return self.get(getattr(request, "username", None) or SIGNED_OUT)  # never "" signed in

    def current(self) -> UserSpace:
        """The space of the user whose Gradio event is being handled (outside an event: the
        local user's, or with sign-in a nobody's)."""
        from gradio.context import LocalContext  # deferred: gradio takes seconds to import

        return self.for_request(LocalContext.request.get(None))

    def get(self, name: str = "") -> UserSpace:
        with self._lock:
            if name not in self._spaces:
                self._spaces[name] = self._make(name)
            return self._spaces[name]

    def _make(self, name: str) -> UserSpace:
        if not name:
            return UserSpace(
                "",
                data_dir(),
                QuestionHistory(data_dir()),
                SavedPairs(self.rag, data_dir(), timeout_s=self.timeout_s),
                rag=self.rag,
            )
        root = user_root(name)
        rag = self.rag
        retriever = None
        if not rag.chroma_host:  # a Chroma server keeps one index per database for everyone
            rag = replace(rag, store_dir=str(root / "vector_db" / "chroma"))
            retriever = RagRetriever(rag, examples_root=root) if rag.enabled else None
        return UserSpace(
            name,
            root,
            QuestionHistory(root),
            SavedPairs(rag, root, timeout_s=self.timeout_s),
            retriever,
            rag,
        )


def user_folder(name: str) -> str:
    """A folder name for a user: readable, and distinct for distinct names."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:40] or "user"
    return f"{stem}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def read_auth(user: str | None, auth_file: str | None) -> list[tuple[str, str]] | None:
    """The (name, password) pairs the app accepts, or None when it needs no sign-in."""
    if user and auth_file:
        raise AuthError("Use --auth NAME or --auth-file FILE, not both.")
    if auth_file:
        return _read_auth_file(Path(auth_file))
    if not user:
        return None
    if ":" in user:
        raise AuthError(
            "A password on the command line is visible to every process on this machine: "
            f"use --auth NAME with the password in ${PASSWORD_ENV}, or --auth-file FILE."
        )
    password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise AuthError(f"--auth {user}: set the password in the environment variable "
                        f"{PASSWORD_ENV} (or use --auth-file FILE).")  # fmt: skip
    return [(user, password)]


def _read_auth_file(path: Path) -> list[tuple[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise AuthError(f"Cannot read the auth file {path.name}: {err.strerror}") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, password = line.partition(":")
        if not sep or not name.strip() or not password:
            raise AuthError(f"Line {number} of {path.name} is not name:password.")
        pairs.append((name.strip(), password))
    if not pairs:
        raise AuthError(f"{path.name} holds no name:password line.")
    if len({n for n, _ in pairs}) != len(pairs):
        raise AuthError(f"{path.name} names a user twice.")
    return pairs


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, signed_in: bool) -> str | None:
    """The warning for an app reachable from other machines without sign-in, or None."""
    if signed_in or is_loopback(host):
        return None
    return (
        f"Warning: the app listens on {host} without sign-in: anyone who can reach this "
        "machine can ask questions, upload databases, read the history and start training. "
        "Start it with --auth NAME (password in $TEXT2SQL_PASSWORD) or --auth-file FILE."
    )


class CurrentHistory:
    """The question history of whoever's event is being handled (for the tabs)."""

    def __init__(self, spaces: Spaces) -> None:
        self.spaces = spaces

    def __getattr__(self, name: str) -> Any:
        return getattr(self.spaces.current().history, name)


class CurrentExamples:
    """The saved pairs of whoever's event is being handled (for the tabs)."""

    def __init__(self, spaces: Spaces) -> None:
        self.spaces = spaces

    def __getattr__(self, name: str) -> Any:
        return getattr(self.spaces.current().examples, name)
