"""A Ctrl-C that lands in Snakemake's log handler still stops a kbatch run.

Snakemake's console handler swallows KeyboardInterrupt in `emit`: a SIGINT sent while the
main thread logs (a job submission, say) is lost and the Jobs run to their end. The plugin's
`interrupts` module delivers it again. These tests send a real SIGINT to this process
from inside Snakemake's real handler.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import time

import pytest
from snakemake.logging import ColorizingTextHandler
from snakemake_executor_plugin_kbatch import interrupts


class SigintOnWrite(io.StringIO):
    """A console whose every write is interrupted by Ctrl-C (the handler runs inside `emit`,
    which writes a line in two pieces: the message, then the newline)."""

    def write(self, text: str) -> int:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        return super().write(text)


@pytest.fixture(autouse=True)
def default_sigint():
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _log_a_line_then_wait(seconds: float = 5.0) -> None:
    handler = ColorizingTextHandler(nocolor=True, stream=SigintOnWrite())
    record = logging.LogRecord("snakemake", logging.INFO, __file__, 1, "job submitted", None, None)
    handler.emit(record)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)


def test_snakemakes_log_handler_swallows_ctrl_c():
    """Why the guard exists; if this fails, Snakemake fixed it and the guard can go."""
    try:
        _log_a_line_then_wait(seconds=1.0)
    except KeyboardInterrupt:
        pytest.fail("Snakemake's log handler no longer swallows KeyboardInterrupt")


def test_ctrl_c_in_the_log_handler_is_delivered_again():
    assert interrupts.install()
    assert not interrupts.install()  # wrapped once
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        _log_a_line_then_wait()
    assert time.monotonic() - started < 3
    # Two Ctrl-Cs swallowed in one line come back as one: a second could cut the cancel short.
    try:
        time.sleep(1.0)
    except KeyboardInterrupt:
        pytest.fail("a swallowed Ctrl-C was delivered twice")


def test_ctrl_c_elsewhere_raises_at_once():
    interrupts.install()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    assert time.monotonic() - started < 1
