"""The Deep Compression stages and recipes: chains, cache keys, budgets and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.compression import deep_compression as dc
from qlab.conversion.converter import DC_VARIANTS, VARIANTS


def test_every_variant_rests_on_a_chain_of_stages_that_starts_from_the_float_model():
    assert set(dc.VARIANT_STAGES) == set(DC_VARIANTS) and set(DC_VARIANTS) <= set(VARIANTS)
    assert dc.chain("pcqat") == ["pruned", "pruned_clustered", "pcqat"]
    assert dc.chain("cqat") == ["clustered", "cqat"]
    assert dc.chain("tuned") == ["tuned"]
    for stage in dc.STAGES:
        assert dc.STAGES[dc.chain(stage)[0]] is None


def test_an_unknown_stage_or_variant_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown Deep Compression stage 'pcqt'.*pcqat"):
        dc.chain("pcqt")
    with pytest.raises(ValueError, match="'pruned' is not a QAT stage"):
        dc.qat_model("pruned", None)
    with pytest.raises(ValueError, match="unknown Deep Compression variant 'qat_int8'"):
        dc.variant_file("qat_int8", None, np.zeros((1, 28, 28, 1), np.float32), 1)


@pytest.mark.parametrize("kwargs, message", [
    ({"sparsity": 1.0}, "sparsity"), ({"sparsity": float("nan")}, "sparsity"), ({"sparsity": 0.0}, "sparsity"),
    ({"clusters": 2}, "clusters"), ({"clusters": 4096}, "clusters"), ({"centroid_init": "kmeans"}, "centroid_init"),
])
def test_a_bad_recipe_names_its_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dc.Recipe(**kwargs)


def test_the_cache_key_holds_the_whole_chain_recipe_and_budget():
    pcqat = dc.stage_config("mnist_cnn", "pcqat", "full", 0)
    assert pcqat["deep_compression"] == ["pruned", "pruned_clustered", "pcqat"]
    assert pcqat["recipe"] == {"sparsity": 0.75, "clusters": 8, "centroid_init": "kmeans_plus_plus",
                               "per_channel": False}
    assert pcqat["budget"]["prune_epochs"] == dc.BUDGETS["full"].prune_epochs
    assert dc.stage_config("mnist_cnn", "pcqat", "smoke", 0) != pcqat
    assert dc.stage_config("mnist_cnn", "pruned", "full", 0) != pcqat
    assert dc.stage_label("mobilenet_v2", "pqat", "smoke", 3) == "mobilenet_v2-smoke-s3-dc_pqat"
    with pytest.raises(ValueError, match="unknown model"):
        dc.stage_config("resnet", "pruned")


def test_a_model_you_bring_gets_the_full_budget_on_its_own_sample_count():
    budget = dc.user_budget(2000)
    assert budget.samples == budget.qat_samples == 2000
    assert budget.prune_epochs == dc.BUDGETS["full"].prune_epochs
    with pytest.raises(ValueError, match="fine_tune_samples"):
        dc.user_budget(0)


def _tiny():
    from qlab.zoo.keras2 import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(8, 3, activation="relu", name="c"),
                             keras.layers.Flatten(), keras.layers.Dense(4, name="d")], name="tiny")


def test_the_stages_of_a_tiny_model_reach_their_sparsity_and_clusters_and_the_control_trains_as_long():
    from qlab.compression import prune

    rng = np.random.default_rng(0)
    x, y = rng.random((96, 6, 6, 1), np.float32), rng.integers(0, 4, 96)
    budget = dc.Budget(prune_epochs=2, cluster_epochs=1, qat_samples=64, samples=None, frequency=100)
    get = dc.stage_runner(_tiny(), x, y, dc.Recipe(0.5, 4), budget)
    pruned = get("pruned")
    table = prune.sparsity_table(pruned).set_index("layer")
    assert table.loc[["c", "d"], "sparsity"].between(0.49, 0.51).all()
    both = get("pruned_clustered")
    kernel = both.get_layer("d").kernel.numpy()
    assert np.unique(kernel).size <= 4 and np.all(kernel[pruned.get_layer("d").kernel.numpy() == 0] == 0)
    assert get("pruned") is pruned  # made once
    tuned, info = dc.run_stage("tuned", _tiny(), x, y, budget=budget)
    assert info["steps"] == 2 * 1 and prune.sparsity_table(tuned)["zeros"].sum() == 0
    with pytest.raises(ValueError, match="x is empty"):
        dc.run_stage("pruned", _tiny(), x[:0], y[:0], budget=budget)


def test_a_budget_function_is_called_only_when_a_stage_runs():
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 6, 6, 1), np.float32), rng.integers(0, 4, 8)
    calls = []

    def budget():
        calls.append("budget")
        return dc.user_budget(0)  # a bad sample count

    get = dc.stage_runner(_tiny(), x, y, budget=budget)
    assert calls == []  # no stage has run: a caller that fine-tunes nothing needs no budget
    with pytest.raises(ValueError, match=r"^fine_tune_samples must be an integer in \[1, \d+\], got 0$"):
        get("pcqat")
    assert calls == ["budget"]  # checked at the chain's first stage, before any fine-tune
