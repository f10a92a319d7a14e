"""Checks of the repository itself: clean notebooks, one dependency list, CI calling the README."""

import json
import re
import subprocess
import tomllib

import pytest

from qlab.files.paths import repository_root

REPO_ROOT = repository_root()


def _tracked_notebooks():
    out = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    return [REPO_ROOT / p for p in out]


def _dirty_cells(path):
    cells = json.loads(path.read_text())["cells"]
    return [i for i, c in enumerate(cells) if c["cell_type"] == "code"
            and (c.get("outputs") or c.get("execution_count") is not None)]


def test_notebooks_in_git_have_no_outputs_or_execution_counts():
    notebooks = _tracked_notebooks()
    assert notebooks, "no notebooks tracked in git"
    dirty = {p.name: _dirty_cells(p) for p in notebooks if _dirty_cells(p)}
    assert dirty == {}, f"notebooks committed with outputs (clear them): {dirty}"


def test_dirty_cell_detection_catches_outputs(tmp_path):
    nb = {"cells": [{"cell_type": "code", "source": "1", "outputs": [], "execution_count": 3}]}
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    assert _dirty_cells(path) == [0]


def _normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower().replace("_", "-")


def _pyproject_requirements():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return {_normalise(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}


def _environment_yml_requirements():
    # environment.yml is simple enough to read without a YAML parser: the "- " items under "pip:"
    lines = (REPO_ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    items = [line.strip()[2:] for line in lines[start + 1:] if line.strip().startswith("- ")]
    return {_normalise(r) for r in items if not r.startswith("-e")}


def test_environment_yml_and_pyproject_list_the_same_dependencies():
    assert _environment_yml_requirements() == _pyproject_requirements()
    assert "python=3.11" in (REPO_ROOT / "environment.yml").read_text()


def _readme_commands():
    text = (REPO_ROOT / "README.md").read_text()
    return re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S)


def test_readme_opens_with_the_run_and_test_commands():
    first_two = [block.strip() for block in _readme_commands()[:2]]
    assert first_two == ["make run", "make test"]


def test_ci_runs_the_readme_test_command():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M)


@pytest.mark.parametrize("target", ["run", "test", "lab", "html", "bench", "setup"])
def test_makefile_targets_create_the_environment_first(target):
    makefile = (REPO_ROOT / "Makefile").read_text()
    match = re.search(rf"^{target}:(.*)$", makefile, flags=re.M)
    assert match and ("setup" in match.group(1) or target == "setup"), target


def _lesson_rows(text):
    """``{lesson: (full s, smoke s)}`` from a markdown table whose rows are ``| `NN_name` | 6 s | 6 s | ...``."""
    rows = re.findall(r"^\| `(\d\d_\w+)` \| (\d+) s \| (\d+) s \|", text, re.MULTILINE)
    return {name: (int(full), int(smoke)) for name, full, smoke in rows}


def test_the_readme_budget_table_lists_every_lesson_and_adds_up_to_its_total():
    readme = (REPO_ROOT / "README.md").read_text()
    rows = _lesson_rows(readme)
    lessons = sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(rows) == lessons
    total = re.search(r"\*\*whole workbook\*\* \| \*\*(\d+) s .*?\*\* \| \*\*(\d+) s", readme)
    assert total, "the budget table has no **whole workbook** row"
    assert (sum(f for f, _ in rows.values()), sum(s for _, s in rows.values())) == \
        (int(total.group(1)), int(total.group(2)))


def test_instructors_guide_covers_every_lesson_with_the_readme_times():
    guide = (REPO_ROOT / "INSTRUCTORS.md").read_text()
    assert _lesson_rows(guide) == _lesson_rows((REPO_ROOT / "README.md").read_text())
    for heading in ("A 90-minute track", "A half-day track", "one output per lesson", "trouble"):
        assert heading in guide
    for problem in ("dead kernel", "No network", "slow laptop", "Chromium missing"):
        assert problem in guide


def _track(guide: str, heading: str) -> list[tuple[int, int, str, str]]:
    """``[(start, end, lesson number, part)]`` of a track table: rows ``| 0-9 | `00_start_here` | core | ...``."""
    section = guide.split(heading, 1)[1].split("\n## ", 1)[0]
    return [(int(a), int(b), lesson, part) for a, b, lesson, part in
            re.findall(r"^\| (\d+)-(\d+) \| `(\d\d)_\w+` \| (core|whole) \|", section, re.MULTILINE)]


def _estimates(guide: str) -> dict[str, dict[str, float]]:
    """``{lesson number: {"core": min, "whole": min}}`` from the lesson table's last two columns."""
    rows = re.findall(r"^\| `(\d\d)_\w+` \| \d+ s \| \d+ s \| ([\d.]+) \| ([\d.]+) \|", guide, re.MULTILINE)
    return {lesson: {"core": float(core), "whole": float(whole)} for lesson, core, whole in rows}


@pytest.mark.parametrize("heading, total", [("A 90-minute track", 85), ("A half-day track", 255)])
def test_each_track_adds_up_fits_its_lessons_and_skips_nothing_they_need(heading, total):
    """Slots follow each other, end within the teaching time (the 90-minute track's cores within 85 minutes, the
    half-day track's within its 4 h 15 min), are at least each part's `qlab lessons` estimate, and no lesson in
    the track names (in its core) a lesson the track skips."""
    from qlab.workbook.lessons import lesson_needs, track_problems

    guide = (REPO_ROOT / "INSTRUCTORS.md").read_text()
    rows, estimates = _track(guide, heading), _estimates(guide)
    assert rows and len(estimates) == len(list((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    assert rows[0][0] == 0 and all(end == nxt for (_, end, _, _), (nxt, _, _, _) in zip(rows, rows[1:]))
    assert rows[-1][1] <= total
    for start, end, lesson, part in rows:
        assert end - start >= estimates[lesson][part], (heading, lesson, part, end - start)
    needs = {p.stem[:2]: lesson_needs(json.loads(p.read_text()), p.stem[:2])
             for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert track_problems([lesson for _, _, lesson, _ in rows], needs) == []
