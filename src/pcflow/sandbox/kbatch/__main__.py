"""Run local kbatch: `python -m pcflow.sandbox.kbatch --port N --state-dir DIR`."""

from pcflow.sandbox.kbatch.server import main

if __name__ == "__main__":
    raise SystemExit(main())
