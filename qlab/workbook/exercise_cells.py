"""The exercise cells of a lesson, and filling them in with answers (solutions or test answers).

An exercise cell holds one ``qlab.check.exercise("<id>", ...)`` call and the learner's
part between two marker lines::

    # YOUR CODE STARTS HERE
    ...
    # YOUR CODE ENDS HERE

The solutions live apart from the lessons, one file per lesson in the checkout's ``solutions/``
folder, beside ``notebooks/`` rather than in it: Run All in a lesson reveals nothing, and a learner
browsing the folder JupyterLab opens (``make lab``) does not come across them. A solutions file is Python, one section per
exercise, each headed ``# %% <id>``; sections headed ``# %% question ...`` answer the
lesson's open questions and are for reading only. ``qlab solutions`` writes each lesson
with its solutions filled in (:func:`write_solved_notebooks`), for instructors.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

START = "# YOUR CODE STARTS HERE"
END = "# YOUR CODE ENDS HERE"
_CALL = re.compile(r"""qlab\.check\.exercise\(\s*["']([0-9]{2}\.[a-z0-9_]+)["']""")
_SECTION = re.compile(r"^# %% (.+?)\s*$", re.MULTILINE)


def cell_source(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def exercise_id(cell: dict) -> str | None:
    """The id of the exercise a code cell checks, or None if it is not an exercise cell."""
    if cell["cell_type"] != "code":
        return None
    found = _CALL.findall(cell_source(cell))
    if len(found) > 1:
        raise ValueError(f"one exercise per cell, found {found}")
    return found[0] if found else None


def exercise_ids(notebook: dict) -> list[str]:
    """The exercises of a notebook (a loaded ``.ipynb``), in cell order; each must have both markers."""
    ids = []
    for cell in notebook["cells"]:
        exercise = exercise_id(cell)
        if exercise is None:
            continue
        source = cell_source(cell)
        if source.count(START) != 1 or source.count(END) != 1 or source.index(START) > source.index(END):
            raise ValueError(f"exercise {exercise}: the cell needs one {START!r} line before one {END!r} line")
        ids.append(exercise)
    if len(set(ids)) != len(ids):
        raise ValueError(f"an exercise appears twice: {ids}")
    return ids


def fill(source: str, answer: str) -> str:
    """``source`` with the lines between the markers replaced by ``answer``, indented like the markers."""
    lines = source.split("\n")
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(START))
    end = next(i for i, line in enumerate(lines) if line.strip().startswith(END))
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    body = [indent + line if line.strip() else "" for line in answer.strip("\n").split("\n")]
    return "\n".join(lines[: start + 1] + body + lines[end:])


def filled_notebook(notebook: dict, answers: dict[str, str], before: dict[str, str] | None = None) -> dict:
    """A copy of ``notebook`` with each exercise answered.

    Args:
        answers: exercise id -> code for its blank; every exercise of the notebook needs one.
        before: exercise id -> another answer, run in a copy of the cell just before the
            answered one (the tests' deliberately wrong answers).
    """
    ids = exercise_ids(notebook)
    missing = [i for i in ids if i not in answers]
    unknown = [i for i in [*answers, *(before or {})] if i not in ids]
    if missing or unknown:
        raise ValueError(f"answers missing for {missing}, or given for exercises not in the notebook: {unknown}")
    result = copy.deepcopy(notebook)
    cells = []
    for cell in result["cells"]:
        exercise = exercise_id(cell)
        if exercise is None:
            cells.append(cell)
            continue
        if before and exercise in before:
            cells.append({**copy.deepcopy(cell), "id": f"{cell.get('id', exercise)}-before",
                          "source": fill(cell_source(cell), before[exercise])})
        cell["source"] = fill(cell_source(cell), answers[exercise])
        cells.append(cell)
    result["cells"] = cells
    return result


def read_answers(path: str | Path) -> dict[str, str]:
    """``{exercise id: code}`` of a solutions file (its ``# %% question`` sections left out)."""
    text = Path(path).read_text()
    heads = list(_SECTION.finditer(text))
    answers = {}
    for head, following in zip(heads, [*heads[1:], None]):
        name = head.group(1)
        body = text[head.end(): following.start() if following else len(text)].strip("\n")
        if name.startswith("question"):
            continue
        if not re.fullmatch(r"[0-9]{2}\.[a-z0-9_]+", name):
            raise ValueError(f"{path}: section {name!r} is neither an exercise id (04.representative) "
                             "nor 'question ...'")
        if name in answers:
            raise ValueError(f"{path}: two sections for {name}")
        answers[name] = body
    return answers


def solutions_path(notebook: str | Path) -> Path:
    """Where the solutions of ``notebook`` (``<checkout>/notebooks/<name>.ipynb``) live: ``<checkout>/solutions/<name>.py``."""
    notebook = Path(notebook)
    return notebook.parent.parent / "solutions" / f"{notebook.stem}.py"


def solved_notebook(notebook: str | Path) -> dict:
    """``notebook`` (a path) with its solutions filled in."""
    data = json.loads(Path(notebook).read_text())
    return filled_notebook(data, read_answers(solutions_path(notebook)))


def write_solved_notebooks(notebooks: list[Path], out_dir: Path) -> list[Path]:
    """Write each lesson that has exercises, solutions filled in, to ``out_dir`` (atomically)."""
    from qlab.files.io import write_bytes_atomic

    written = []
    for path in notebooks:
        if not exercise_ids(json.loads(path.read_text())):
            continue
        target = out_dir / path.name
        text = json.dumps(solved_notebook(path), indent=1, ensure_ascii=False) + "\n"
        write_bytes_atomic(target, text.encode())
        written.append(target)
    return written

