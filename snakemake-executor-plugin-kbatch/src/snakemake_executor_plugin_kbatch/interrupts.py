"""A Ctrl-C that Snakemake would drop, delivered again.

Snakemake's console log handler catches KeyboardInterrupt in `emit` and ignores it
(snakemake/logging.py, 9.x). A SIGINT that lands while the main thread writes a log line is
lost: the run goes on and its kbatch Jobs run to their end. The executor wraps SIGINT's handler:
when the interrupted stack is inside that `emit`, it does not raise there but delivers the
signal to the main thread again a moment later, where the scheduler turns it into a cancel.
"""

from __future__ import annotations

import _thread
import signal
import threading
from types import FrameType
from typing import Any

# (file name ending, function name) of frames that swallow KeyboardInterrupt.
SWALLOWING = (("snakemake/logging.py", "emit"),)
REDELIVER_AFTER_S = 0.2
_MAX_DEPTH = 64
# Set while a re-delivery is scheduled: Ctrl-Cs swallowed meanwhile (a log line is written in
# several pieces) come back as one, so no second interrupt can cut the cancel short.
_redelivery_pending = threading.Event()


def in_swallowing_frame(frame: FrameType | None) -> bool:
    """Whether a KeyboardInterrupt raised at `frame` would pass through a swallowing frame."""
    for _ in range(_MAX_DEPTH):
        if frame is None:
            return False
        code = frame.f_code
        filename = code.co_filename.replace("\\", "/")
        if any(filename.endswith(f) and code.co_name == n for f, n in SWALLOWING):
            return True
        frame = frame.f_back
    return False


def install() -> bool:
    """Wrap SIGINT's Python handler (main thread only). False where nothing was wrapped: not
    the main thread, SIGINT ignored or left to the OS, or already wrapped."""
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous) or getattr(previous, "_kbatch_redelivers", False):
        return False

    def redeliver(signum: int) -> None:
        _redelivery_pending.clear()
        _thread.interrupt_main(signum)

    def on_sigint(signum: int, frame: FrameType | None) -> Any:
        if in_swallowing_frame(frame):
            if not _redelivery_pending.is_set():
                _redelivery_pending.set()
                timer = threading.Timer(REDELIVER_AFTER_S, redeliver, args=(signum,))
                timer.daemon = True
                timer.start()
            return None
        return previous(signum, frame)

    on_sigint._kbatch_redelivers = True  # type: ignore[attr-defined]
    try:
        signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: leave Snakemake's behaviour as it is
        return False
    return True
