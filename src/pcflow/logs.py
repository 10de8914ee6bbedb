"""Rule logging: to the rule's log file and stderr, with secrets redacted (tracebacks too)."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

from pcflow.redaction import redact

_TRACEBACKS = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Rewrites every record so that no SAS signature or key reaches a log.

    The message, the exception traceback (`exc_info`, formatted here into `exc_text`, which
    formatters use instead of formatting it again) and `stack_info` are all redacted.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RedactingFormatter(logging.Formatter):
    """A formatter whose whole output is redacted (a second net behind RedactingFilter)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


@contextlib.contextmanager
def rule_logging(log_path: str | Path, name: str) -> Iterator[logging.Logger]:
    """Log a rule's work to its log file; on failure, name what failed and where the log is."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    logging.getLogger("pcflow").setLevel(logging.DEBUG)
    # Azure SDK logs every request at INFO; keep rule logs readable.
    logging.getLogger("azure").setLevel(logging.WARNING)
    fmt = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers = [logging.FileHandler(log_path, mode="w"), logging.StreamHandler(sys.stderr)]
    handlers[1].setLevel(logging.INFO)
    for handler in handlers:
        handler.setFormatter(fmt)
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    log = logging.getLogger(f"pcflow.{name}")
    try:
        yield log
    except Exception as err:
        # The traceback goes to the log (redacted); the user sees one line naming the log.
        log.debug("traceback:\n%s", traceback.format_exc())
        log.error("%s failed: %s (log: %s)", name, err, log_path)
        raise SystemExit(1) from None
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
