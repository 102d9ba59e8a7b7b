"""Ports known before their server binds them (broadcaster/demo/ports.py): below the ephemeral range,
reserved on this machine while held, so two of our servers never pick the same one."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from broadcaster.demo import ports  # bindable
from broadcaster.demo.ports import PORT_HIGH, PORT_LOW, TWIN_OFFSET, reserve_ports


def locked_elsewhere(port: int) -> bool:
    """Whether another process finds the port reserved."""
    code = f"from broadcaster.demo.ports import _lock; print(_lock({port}) is None)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip() == "True"


def test_ports_and_their_twins_are_distinct_below_the_ephemeral_range() -> None:
    with reserve_ports(5, twins=True) as held:
        every = [p for port in held.ports for p in (port, port + TWIN_OFFSET)]
        assert len(set(every)) == 10 and all(PORT_LOW <= p < PORT_HIGH + TWIN_OFFSET < 32768 for p in every)


def test_a_reserved_port_is_not_given_to_another_process_until_released() -> None:
    held = reserve_ports(1, twins=True)
    port = held.ports[0]
    assert locked_elsewhere(port) and locked_elsewhere(port + TWIN_OFFSET)
    held.release()
    assert not locked_elsewhere(port) and not locked_elsewhere(port + TWIN_OFFSET)


def test_a_port_reserved_or_bound_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    with reserve_ports(1) as first, socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        busy = bound.getsockname()[1]
        free = next(p for p in range(PORT_LOW, PORT_HIGH) if p != first.ports[0] and ports.bindable(p)
                    and not locked_elsewhere(p))
        offered = iter([first.ports[0], busy, free])
        monkeypatch.setattr("broadcaster.demo.ports.random.randrange", lambda low, high: next(offered))
        with reserve_ports(1) as second:
            assert second.ports == [free]
