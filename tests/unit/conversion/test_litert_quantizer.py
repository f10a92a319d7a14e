"""qlab.conversion.litert_quantizer's argument checks, without models."""

from __future__ import annotations

import pytest

from qlab.conversion import litert_quantizer as lq


def test_unknown_algorithm_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match="unknown weight algorithm 'Mse'; valid: min_max, mse, octav"):
        lq.check_algorithm("Mse")
