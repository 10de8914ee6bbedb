"""Run local kbatch: `python -m pcflow.localkbatch --port N --state-dir DIR`."""

from pcflow.localkbatch.server import main

if __name__ == "__main__":
    raise SystemExit(main())
