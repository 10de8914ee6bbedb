"""Calendars and incomplete periods: which years, seasons or months a daily time axis covers
whole (Daymet's 365-day years), and whether the partial ones are dropped or flagged."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pcflow.reductions.common import _check_choice

INCOMPLETE = ("drop", "flag")
PERIOD_FREQ = {"year": "YS", "season": "QS-DEC", "month": "MS"}


def period_days(time: Any, freq: str) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """(period starts, days with data, days expected) per period of a daily time axis.

    Expected days are the calendar days of the period, except that Dec 31 of a leap year is
    never required (Daymet's 365-day years drop it). A period the data do not cover from its
    first to its last day is incomplete.
    """
    t = pd.DatetimeIndex(time)
    days = t.normalize().unique()
    counts = pd.Series(1, index=days).resample(freq).count()
    starts = pd.DatetimeIndex(counts.index)
    have = counts.to_numpy()
    ends = starts + pd.tseries.frequencies.to_offset(freq)
    every_day = pd.date_range(starts[0], ends[-1], inclusive="left")
    dropped = every_day[(every_day.month == 12) & (every_day.day == 31) & every_day.is_leap_year]
    dropped = dropped[~dropped.isin(days)]  # Daymet's 365-day years
    expected = np.array(
        [
            (e - s).days - int(((dropped >= s) & (dropped < e)).sum())
            for s, e in zip(starts, ends, strict=True)
        ]
    )
    return starts, have, expected


def _completeness(
    ds: xr.Dataset, what: str, incomplete: str
) -> tuple[np.ndarray | None, xr.Dataset, str]:
    """Which periods (by their start, resample labels) to keep, the flag coords, a note.

    incomplete="drop": only complete periods are kept; "flag": all are kept and marked.
    """
    _check_choice("incomplete", incomplete, INCOMPLETE)
    starts, have, expected = period_days(ds["time"].values, PERIOD_FREQ[what])
    complete = have >= expected
    partial = [
        f"{_period_label(s, what)} ({h} of {e} days)"
        for s, h, e, c in zip(starts, have, expected, complete, strict=True)
        if not c
    ]
    flags = xr.Dataset(
        {
            "complete": ("time", complete, {"long_name": f"whole {what} of data"}),
            "days": ("time", have.astype("int16"), {"long_name": f"days of data in the {what}"}),
        },
        coords={"time": starts.values},
    )
    if not partial:
        note = "none"
    elif incomplete == "drop":
        note = f"dropped: {', '.join(partial)}"
    else:
        note = f"flagged (kept): {', '.join(partial)}"
    keep = starts.values[complete] if incomplete == "drop" else None
    if keep is not None and keep.size == 0:
        raise ValueError(
            f"no complete {what} in the data ({', '.join(partial)}); widen datetime or set "
            "reductions_incomplete: flag"
        )
    return keep, flags, note


def _period_label(start: pd.Timestamp, what: str) -> str:
    if what == "year":
        return f"{start:%Y}"
    if what == "month":
        return f"{start:%Y-%m}"
    season = {12: "DJF", 3: "MAM", 6: "JJA", 9: "SON"}[start.month]
    return f"{season} {start.year + (start.month == 12)}"
