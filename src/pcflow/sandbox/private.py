"""Secret files and directories of the sandbox: created owner-only, reused only if still so.

Account keys, the CA key, the gateway password and pod logs live in the state dir. A file whose
mode was widened (group/other bits) may have leaked: it is refused with one line naming the
file and the fix rather than silently reused.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from pcflow.sandbox.process import SandboxError


def private_dir(path: Path) -> Path:
    """Create path (and parents) if needed and make it 0700: nothing inside is world-readable."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if stat.S_IMODE(path.stat().st_mode) != 0o700 and path.stat().st_uid == os.getuid():
        path.chmod(0o700)
    return path


def check_private(path: Path) -> None:
    """Raise SandboxError (one line) unless the file is readable by its owner only."""
    mode = stat.S_IMODE(Path(path).stat().st_mode)
    if mode & 0o077:
        raise SandboxError(
            f"sandbox: {path} has mode {mode:04o} (others can read it; its secret may have "
            f"leaked) — delete it to get a new one (after `pcflow sandbox down`), or "
            f"`chmod 600 {path}` if you are sure it did not leak"
        )


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable by the owner only (created 0600, never wider)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def read_private(path: Path) -> bytes:
    """A secret file's content, after checking that it is still owner-only."""
    check_private(path)
    return Path(path).read_bytes()


def ensure_private_text(path: Path, make: Callable[[], str]) -> str:
    """The text of a secret file, made with `make()` (0600) when absent."""
    path = Path(path)
    if path.exists():
        return read_private(path).decode().strip()
    private_dir(path.parent)
    value = make()
    write_private(path, value.encode())
    return value
