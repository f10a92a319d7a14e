"""Every notebook, executed by papermill in smoke mode in a fresh kernel (the copies go to artifacts/).

Each notebook records its key numbers with ``qlab.record``; CHECKS says what must hold for them.
Budget: under a minute per notebook in smoke mode on 2 cores.
"""

from __future__ import annotations

import pytest

from qlab.notebook import notebook_paths, run_notebook

# notebook name -> {record name: predicate on its value}
CHECKS = {
    "00_start_here.ipynb": {"environment_ok": lambda v: v is True},
}


@pytest.fixture(scope="session")
def smoke_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("executed-smoke")


@pytest.mark.parametrize("notebook", notebook_paths(), ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_mode_and_records_sane_numbers(notebook, smoke_dir):
    run = run_notebook(notebook, smoke=True, output_dir=smoke_dir, progress=False)
    checks = CHECKS.get(notebook.name)
    assert checks, f"{notebook.name} has no CHECKS entry: say which numbers it must record"
    missing = sorted(set(checks) - set(run.records))
    assert not missing, f"{notebook.name} did not record {missing}"
    failed = {name: run.records[name] for name, ok in checks.items() if not ok(run.records[name])}
    assert not failed, f"{notebook.name}: implausible recorded values {failed}"
