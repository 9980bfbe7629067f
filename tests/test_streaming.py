"""Stop sequences over streamed text, and a generation thread as an iterator
(engine/backends/streaming.py)."""

from __future__ import annotations

import threading

import pytest

from engine.backends.streaming import StopSequences, cut_at_stop, threaded


@pytest.mark.parametrize(
    "pieces, stop, shown",
    [
        (["SELECT 1;", "\n\nmore"], ["\n\n"], ["SELECT 1;", ""]),
        (["SELECT 1;\n", "\nmore"], ["\n\n"], ["SELECT 1;", ""]),  # a stop split over pieces
        (["ab", "c", "d"], ["cx"], ["ab", "", "cd"]),  # held back, then shown: no stop after all
        (["abc"], [], ["abc"]),
        (["a", "STOP", "b"], ["STOP", "a"], [""]),  # the earliest stop wins
    ],
)
def test_stop_sequences_hold_back_a_possible_start_and_cut_at_the_first(pieces, stop, shown):
    stops, out = StopSequences(stop), []
    for piece in pieces:
        out.append(stops.feed(piece))
        if stops.stopped:
            break
    assert out == shown
    assert "".join(out) + stops.flush() == cut_at_stop("".join(pieces), stop)


def test_closing_the_iterator_stops_the_generating_thread():
    told = threading.Event()

    def run(emit):
        for n in range(1_000_000):
            if emit(n):
                told.set()
                return

    items = threaded(run)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert told.is_set()  # the thread heard of it and ended before close() returned


def test_an_error_in_the_thread_reaches_the_reader():
    def run(emit):
        emit("first")
        raise ValueError("prompt too long")

    items = threaded(run)
    assert next(items) == "first"
    with pytest.raises(ValueError, match="prompt too long"):
        next(items)
