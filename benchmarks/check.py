"""Check benchmarks/results.json against the workbook's goals; exit 1 listing every miss.

    .venv/bin/python benchmarks/check.py [benchmarks/results.json]

The goals (accuracy bounds per model, int8 files >= 3x smaller than float32, latency
measured against float32 in the same run, the transformer's 2-bit break, its repair and its
Keras 3 QAT from the figures of its recorded studies, every notebook runs, the full workbook in
<= 30 min) are defined in qlab/workbook/bench/goals.py, where they are unit-tested.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from qlab.workbook.bench import check_goals, goal_results, notes, results_json


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    path = Path(args[0]) if args else results_json()
    results = json.loads(path.read_text())
    goals, missed = goal_results(results), check_goals(results)
    for line in notes(results):
        print(f"note: {line}")
    if missed:
        print(f"{len(missed)} of {len(goals)} goals MISSED in {path}:")
        for line in missed:
            print(f"  - {line}")
        return 1
    print(f"all {len(goals)} goals met in {path} (measured {results.get('finished', '?')} on "
          f"{results.get('environment', {}).get('cpu', '?')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
