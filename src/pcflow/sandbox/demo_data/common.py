"""What every demo generator shares: the seed all demo arrays are drawn from."""

from __future__ import annotations

SEED = 20200605
