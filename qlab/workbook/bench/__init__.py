"""The benchmark: accuracy, size, latency and workbook run time, measured side by side.

``qlab bench`` (and ``make bench``) measures everything in one process on one machine
and writes ``benchmarks/results.json``, ``BENCHMARKS.md`` and a plot;
``benchmarks/check.py`` reads the JSON back and fails when a goal is missed.

- :mod:`~qlab.workbook.bench.measure` runs models, notebooks and widgets and returns
  plain dicts (:func:`collect` is all of it);
- :mod:`~qlab.workbook.bench.goals` judges such a dict against the workbook's goals;
- :mod:`~qlab.workbook.bench.report` writes the JSON, the Markdown (its prose is the
  template ``report.md.tmpl``) and the picture of :mod:`qlab.plots.benchmark`;
- :mod:`~qlab.workbook.bench.paths` finds ``benchmarks/`` in the repository, when asked.
"""

from qlab.workbook.bench.goals import (ACCURACY_GOALS, INT8_VARIANTS, MAX_WORKBOOK_FULL_SECONDS,
                                       MIN_INT8_SIZE_RATIO, PLANNED_NOTEBOOKS,
                                       WIDGET_MEDIAN_GOAL_MS, accuracy_gaps, check_goals,
                                       goal_results, notebook_totals, notes)
from qlab.workbook.bench.measure import (SCHEMA, bench_models, collect, load_widget_benchmark,
                                         measure_compare, measure_latency_repeats, measure_notebooks,
                                         measure_widgets, op_counts, scale_spread_summary,
                                         summarize_repeats)
from qlab.workbook.bench.paths import plot_png, report_md, results_json
from qlab.workbook.bench.report import render_markdown, save_plot, write_report

__all__ = [
    # measure
    "SCHEMA", "bench_models", "collect", "measure_compare", "measure_latency_repeats", "measure_notebooks",
    "measure_widgets", "load_widget_benchmark", "op_counts", "scale_spread_summary", "summarize_repeats",
    # goals
    "ACCURACY_GOALS", "INT8_VARIANTS", "MIN_INT8_SIZE_RATIO", "MAX_WORKBOOK_FULL_SECONDS",
    "WIDGET_MEDIAN_GOAL_MS", "PLANNED_NOTEBOOKS", "accuracy_gaps", "check_goals", "goal_results",
    "notebook_totals", "notes",
    # report
    "render_markdown", "save_plot", "write_report",
    # paths
    "results_json", "report_md", "plot_png",
]
