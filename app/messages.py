"""Messages for the browser: no server paths.

Errors from the engine name files by their path, which helps on a terminal and tells a
browser user where the server keeps things. Every message the app shows goes through
:func:`public`.
"""

from __future__ import annotations

import re

# Two or more "/name" segments not glued to a word, a URL or a date: /tmp/gradio/ab/f.sqlite
_PATH = re.compile(r"(?<![\w:/.~-])(?:/[^\s/'\"`()<>,;|]+){2,}/?")


def public(message: object) -> str:
    """``message`` with each absolute path cut to its last part, a file or folder name."""
    return _PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], str(message))


def first_line(err: BaseException) -> str:
    """An exception as one public line."""
    text = str(err).strip().splitlines()
    return public(text[0] if text else type(err).__name__)
