"""tails.py: a Tail is a value, whatever its Log does afterwards; a Log keeps what it must, and no more."""

from __future__ import annotations

import random

from broadcaster.tails import Log


def test_a_tail_reads_as_it_was_taken_after_adds_drops_and_compactions() -> None:
    rng = random.Random(7)
    log, taken = Log(5), []
    model: list[str] = []  # the items kept, oldest first
    first = 5
    for n in range(3000):
        log.add(f'"{n}"')
        model.append(f'"{n}"')
        if rng.random() < 0.6:  # drop a few at the front, now and then everything
            k = len(model) if rng.random() < 0.01 else min(rng.randint(0, 3), len(model))
            log.drop_to(log.first + k)
            del model[:k]
            first += k
        if rng.random() < 0.05:
            count = rng.choice([None, 0, 1, 10, 1000])
            tail = log.tail(count)
            expected = model if count is None else model[len(model) - min(count, len(model)):]
            taken.append((tail, list(expected)))
        assert (log.first, log.end, len(log)) == (first, first + len(model), len(model))
    assert len(taken) > 100
    for tail, expected in taken:
        assert tail.since(tail.first) == expected
        assert tail.text() == "[" + ",".join(expected) + "]"
        assert tail.end - tail.first == len(expected)
        middle = tail.first + len(expected) // 2
        assert tail.since(middle) == expected[len(expected) // 2:]
        assert tail.since(tail.first - 3) == expected  # never before its first


def test_a_log_lets_go_of_what_it_dropped() -> None:
    log = Log()
    for n in range(10_000):
        log.add(str(n))
        log.drop_to(log.end - 10)
    assert len(log) == 10 and len(log._items) < 200  # compacted: the list does not grow for ever

