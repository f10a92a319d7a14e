"""How long each lesson takes a learner in the room (``qlab lessons``): the slots of ``INSTRUCTORS.md``.

The estimate reads an executed copy of the lesson (``qlab run`` writes them) and adds up:

- its Markdown at :data:`WORDS_PER_MINUTE`, its code at :data:`CODE_LINES_PER_MINUTE`;
- :data:`SECONDS_PER_OUTPUT` for each cell that shows text or a table, :data:`MINUTES_PER_FIGURE`
  per figure and :data:`MINUTES_PER_WIDGET` per widget;
- :data:`MINUTES_PER_EXERCISE` for each checked exercise (writing it, running the check);
- the measured run time of its cells (papermill's per-cell durations).

The **core** is everything before the lesson's ``## Going further`` heading, the part a track
teaches; the **whole** lesson includes what follows it. Cells tagged ``records`` (hidden, for
the tests) are not counted.

A lesson needs the earlier lessons its core names ("notebook `01_buckets` showed ..."):
:func:`lesson_needs` reads them from the lesson itself, so the list cannot drift from the text,
and a track must not skip a lesson that one of its lessons needs (:func:`track_problems`;
``tests/unit/test_repo.py`` checks the tracks of ``INSTRUCTORS.md``).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from qlab.workbook.exercise_cells import cell_source

WORDS_PER_MINUTE = 200
CODE_LINES_PER_MINUTE = 10
SECONDS_PER_OUTPUT = 45
MINUTES_PER_FIGURE = 1
MINUTES_PER_WIDGET = 3
MINUTES_PER_EXERCISE = 4
GOING_FURTHER = "## Going further"

_LESSON_REFERENCE = re.compile(r"`(\d\d)_[a-z0-9_]+`|(?:notebook|lesson)s? `?(\d\d)\b")

_FIGURE = 1
MINUTES_PER_WIDGET = 3
MINUTES_PER_EXERCISE = 4
GOING_FURTHER = "## Going further"

#: lesson number -> the earlier lessons whose ideas it uses without teaching them again
NEEDS: dict[str, tuple[str, ...]] = {
    "00": (),
    "01": ("00",),
    "02": ("01",),
    "03": ("00",),
    "04": ("01", "03"),
    "05": ("01", "04"),
    "06": ("01", "04"),
    "07": ("06",),
    "08": ("04",),
    "09": ("04", "06"),
    "10": ("04", "08"),
    "11": ("04", "06", "10"),
    "12": ("04", "06"),
    "13": ("01", "08", "09", "11"),
}

_PROGRESS = re.compile(r"\d+%\|")
_FIGURE = "image/png"
_WIDGET = "application/vnd.jupyter.widget-view+json"
_VISIBLE = ("text/plain", "text/html", "text/markdown", "text/latex")


@dataclass(frozen=True)
class Reading:
    """What a learner reads, watches and writes in one part of a lesson, and what it adds up to."""

    words: int = 0
    code_lines: int = 0
    outputs: int = 0
    figures: int = 0
    widgets: int = 0
    exercises: int = 0
    run_seconds: float = 0.0

    @property
    def minutes(self) -> float:
        return (self.words / WORDS_PER_MINUTE + self.code_lines / CODE_LINES_PER_MINUTE
                + self.outputs * SECONDS_PER_OUTPUT / 60 + self.figures * MINUTES_PER_FIGURE
                + self.widgets * MINUTES_PER_WIDGET + self.exercises * MINUTES_PER_EXERCISE
                + self.run_seconds / 60)

    def __add__(self, other: "Reading") -> "Reading":
        return Reading(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values())))


def cell_reading(cell: dict) -> Reading:
    """The reading of one executed cell."""
    tags = cell.get("metadata", {}).get("tags", [])
    if "records" in tags:
        return Reading()
    text = cell_source(cell)
    if cell["cell_type"] == "markdown":
        return Reading(words=len(re.findall(r"\S+", text)))
    if cell["cell_type"] != "code":
        return Reading()
    lines = sum(1 for line in text.splitlines() if line.strip())
    seconds = float(cell.get("metadata", {}).get("papermill", {}).get("duration") or 0.0)
    outputs = cell.get("outputs", [])
    figures = sum(_FIGURE in o.get("data", {}) for o in outputs)
    # a progress bar is a widget too (tqdm in a notebook), but there is nothing to play with: the run time covers it
    widgets = sum(_WIDGET in o.get("data", {}) and not _PROGRESS.search(str(o["data"].get("text/plain", "")))
                  for o in outputs)
    shows = any(o.get("output_type") == "stream" and o.get("name") == "stdout"
                or (set(o.get("data", {})) & set(_VISIBLE) and not set(o.get("data", {})) & {_FIGURE, _WIDGET})
                for o in outputs)
    exercise = "exercise" in tags
    return Reading(code_lines=lines, outputs=int(shows and not exercise), figures=figures, widgets=widgets,
                   exercises=int(exercise), run_seconds=seconds)


def core_cells(notebook: dict) -> list[dict]:
    """The cells before the lesson's ``## Going further`` heading (all of them if it has none)."""
    for i, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "markdown" and cell_source(cell).lstrip().startswith(GOING_FURTHER):
            return notebook["cells"][:i]
    return notebook["cells"]


def lesson_reading(notebook: dict) -> tuple[Reading, Reading]:
    """``(core, whole)`` of an executed notebook (a loaded ``.ipynb``)."""
    core = sum(map(cell_reading, core_cells(notebook)), Reading())
    return core, sum(map(cell_reading, notebook["cells"]), Reading())


def lesson_needs(notebook: dict, number: str) -> set[str]:
    """The earlier lessons (numbers) that the core of lesson ``number`` names."""
    text = "\n".join(cell_source(c) for c in core_cells(notebook) if c["cell_type"] == "markdown")
    return {a or b for a, b in _LESSON_REFERENCE.findall(text)} & {f"{n:02d}" for n in range(int(number))}


def lesson_times(executed: list[Path]) -> pd.DataFrame:
    """One row per executed lesson: the core's and the whole lesson's minutes, and what they are made of."""
    rows = []
    for path in executed:
        core, whole = lesson_reading(json.loads(Path(path).read_text()))
        rows.append({"lesson": Path(path).stem, "core min": round(core.minutes, 1),
                     "whole min": round(whole.minutes, 1), "has going further": core != whole,
                     **{f"core {k}": v for k, v in asdict(core).items()},
                     **{f"whole {k}": v for k, v in asdict(whole).items()}})
    return pd.DataFrame(rows)


def executed_lessons(mode: str = "full") -> list[Path]:
    """The executed copies of the last ``qlab run`` (``--smoke``: of the smoke run), in lesson order."""
    from qlab.files.paths import artifacts_dir
    from qlab.workbook.notebook import notebook_paths

    folder = artifacts_dir() / "notebooks" / mode
    paths = [folder / p.name for p in notebook_paths()]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"no executed copy of {', '.join(missing)} in {folder}: run "
                                f"`qlab run{' --smoke' if mode == 'smoke' else ''}` first")
    return paths


def track_problems(track: list[str], needs: dict[str, set[str]]) -> list[str]:
    """Each lesson of ``track`` (numbers such as "04") that needs a lesson the track skips, in words."""
    unknown = [lesson for lesson in track if lesson not in needs]
    if unknown:
        raise ValueError(f"unknown lessons {unknown}; the lessons are {', '.join(sorted(needs))}")
    return [f"{lesson} needs {need}, which the track skips" for lesson in track for need in sorted(needs[lesson])
            if need not in track]
