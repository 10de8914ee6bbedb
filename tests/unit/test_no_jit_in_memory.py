"""Small in-memory steps (plots, the series climatology and anomaly) compile no numba kernels.

numbagg's kernels (used by xarray's quantile and by flox when installed) are JIT-compiled in
every new process and not cached: ~20 s for one quantile gufunc, ~7 s for flox's grouped
std/min/max on this machine. A plot job or a series reduction handles kilobytes, so that
compile was almost all of its run time. Counted in a fresh process (compiled kernels are
cached per process, so an earlier test in this one would hide them).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = """
import json, sys, tempfile, warnings
warnings.simplefilter("ignore")
from numba.core import event
from pcflow import plotting, reductions
from pcflow.testing.synthetic import daymet_like

ds = daymet_like(ny=8, nx=6).compute()  # in memory, like a computed series or map
out = tempfile.mkdtemp()
compiled = {}
for name in sys.argv[1:]:
    # The spatial mean and annual maps run pcflow's own kernel (numba, cached on disk after
    # its first compile): their plots are counted, not their reductions.
    own_kernel = name in ("spatial_mean", "annual")
    if own_kernel:
        result = reductions.run(name, ds)
    with event.install_recorder("numba:compile") as rec:
        if not own_kernel:
            result = reductions.run(name, ds)
        plotting.plot(name, result, f"{out}/{name}.png", {"dataset": "t"})
    compiled[name] = [ev.data["dispatcher"].py_func.__qualname__ for _, ev in rec.buffer
                      if ev.is_start]
print(json.dumps(compiled))
"""


@pytest.mark.parametrize("names", [("spatial_mean", "climatology_month", "anomaly", "annual")])
def test_series_reductions_and_plots_compile_no_numba_kernels(names):
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, *names], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]
    compiled = json.loads(run.stdout.strip().splitlines()[-1])
    assert compiled == {name: [] for name in names}
