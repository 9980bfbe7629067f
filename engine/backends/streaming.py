"""An answer as it is generated, for one prompt, and stop sequences over such text.

:func:`stream_text` yields the pieces of one answer: from the backend's own ``stream`` where it
has one (llama.cpp, transformers), else the whole answer at once (an OpenAI-compatible
server). Closing the iterator ends the generation at the next token. :class:`StopSequences`
cuts text at the first of some stop strings, holding back what may be the start of one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from engine.backends.base import GenerationConfig

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def stream_text(backend: Any, prompt: str, cfg: GenerationConfig) -> Iterator[str]:
    """The answer to ``prompt`` piece by piece (``backend``: an engine Backend)."""
    if hasattr(backend, "stream"):
        yield from backend.stream(prompt, cfg)
    else:
        yield backend.generate([prompt], cfg)[0]


def threaded(run: Callable[[Callable[[Any], bool]], None]) -> Iterator[Any]:
    """What ``run(emit)`` emits, as an iterator, while it runs in a thread of its own.
    ``emit(item)`` returns True once the iterator has been closed: ``run`` should stop then."""
    items: queue.Queue = queue.Queue()
    closed = threading.Event()

    def emit(item: Any) -> bool:
        items.put(item)
        return closed.is_set()

    def work() -> None:
        try:
            run(emit)
        except BaseException as err:  # raised in the consumer's thread
            items.put(_Failed(err))
        finally:
            items.put(_DONE)

    thread = threading.Thread(target=work, name="generate-stream", daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        closed.set()
        thread.join()


class StopSequences:
    """Text fed piece by piece, cut before the first stop string. :meth:`feed` returns what
    is safe to show (a tail that may begin a stop string waits); :attr:`stopped` turns True
    at the first stop string; :meth:`flush` gives what waited once the text has ended."""

    def __init__(self, stop: Sequence[str] | None) -> None:
        self.stop = [s for s in stop or () if s]
        self.stopped = False
        self._held = ""

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        text = self._held + piece
        cut = min((i for s in self.stop if (i := text.find(s)) >= 0), default=-1)
        if cut >= 0:
            self.stopped, self._held = True, ""
            return text[:cut]
        keep = max((n for s in self.stop for n in range(1, len(s)) if text.endswith(s[:n])),
                   default=0)  # fmt: skip
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if self.stopped else held


def cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """``text`` up to the first of the ``stop`` strings."""
    stops = StopSequences(stop)
    return stops.feed(text) + stops.flush()
