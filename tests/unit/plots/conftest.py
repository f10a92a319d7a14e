"""Every picture test draws off-screen and starts with pyplot empty.

The plots never use pyplot; starting each test with no pyplot figure open lets a test
assert that its code left none open (other test files may draw pyplot figures).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def no_open_pyplot_figures():
    plt.close("all")
