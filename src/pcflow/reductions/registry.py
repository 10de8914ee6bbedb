"""The reduction registry: names (some carrying their main parameter, `annual_max`) to
functions, and the list of names the config may use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import xarray as xr

from pcflow.reductions.common import FREQS, STATS

Reduction = Callable[..., xr.Dataset]
REGISTRY: dict[str, Reduction] = {}


def register(name: str) -> Callable[[Reduction], Reduction]:
    def deco(fn: Reduction) -> Reduction:
        REGISTRY[name] = fn
        return fn

    return deco


_SUFFIXED = {
    "annual": ("stat", STATS),
    "seasonal": ("stat", STATS),
    "climatology": ("freq", FREQS),
    "anomaly": ("freq", FREQS),
}
_ALIASES = {"ndvi": "ndvi_monthly", "ndvi_composite": "ndvi_monthly"}


def resolve(name: str) -> tuple[Reduction, dict[str, Any]]:
    """The function for a reduction name and the parameters encoded in it (`annual_max`)."""
    name = _ALIASES.get(name, name)
    if name in REGISTRY:
        return REGISTRY[name], {}
    base, _, suffix = name.partition("_")
    if base in _SUFFIXED:
        param, choices = _SUFFIXED[base]
        if suffix in choices:
            return REGISTRY[base], {param: suffix}
        if base == "climatology" and suffix.endswith("_field"):
            freq = suffix.removesuffix("_field")
            if freq in choices:
                return REGISTRY[base], {param: freq, "field": True}
    raise ValueError(f"reduction {name!r} is unknown; use one of: {', '.join(available())}")


def available() -> list[str]:
    names = [n for n in REGISTRY if n not in _SUFFIXED]
    for base, (_, choices) in _SUFFIXED.items():
        names += [base] + [f"{base}_{c}" for c in choices]
    names += [f"climatology_{f}_field" for f in FREQS]
    return sorted(set(names))
