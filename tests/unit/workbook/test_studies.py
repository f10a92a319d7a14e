"""The study cache: recorded tables are used only for the weights they were measured on."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from qlab.workbook import studies


class _Variable:
    def __init__(self, name: str, value: np.ndarray):
        self.name, self._value = name, value

    def numpy(self) -> np.ndarray:
        return self._value


class _Model:
    def __init__(self, scale: float):
        self.weights = [_Variable("dense/kernel:0", scale * np.arange(6, dtype=np.float32).reshape(2, 3))]


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A fake zoo model loader, a recorded dir and a cache dir, and a counting study."""
    import qlab.zoo.models as models

    state = {"scale": 1.0, "calls": 0}
    monkeypatch.setattr(models, "load_or_train", lambda name, size, seed, verbose=0: _Model(state["scale"]))
    monkeypatch.setattr(studies, "recorded_dir", lambda: tmp_path / "recorded")
    monkeypatch.setattr(studies, "cache_dir", lambda: tmp_path / "cache")

    def compute(model_name, size, seed, verbose):
        state["calls"] += 1
        return pd.DataFrame({"bits": [8, 3], "accuracy": [0.99, 0.4 + state["scale"] / 100],
                             "label": ["per-tensor", "per-channel"]})

    monkeypatch.setitem(studies.STUDIES, "toy", studies.StudySpec("toy", compute, 1))
    return state


def test_computes_once_then_reads_the_cache(world):
    first = studies.run_study("toy", "mnist_cnn", "smoke", 0, verbose=False)
    second = studies.run_study("toy", "mnist_cnn", "smoke", 0, verbose=False)
    assert (first.source, second.source, world["calls"]) == ("computed", "cached", 1)
    pd.testing.assert_frame_equal(first.table, second.table)
    assert "computed earlier" in second.provenance() and first.fingerprint in repr(second)


def test_recorded_table_is_preferred_and_other_weights_never_match(world):
    study = studies.run_study("toy", "mnist_cnn", "smoke", 0, verbose=False)
    path = studies.record_study(study)
    assert studies.run_study("toy", "mnist_cnn", "smoke", 0, verbose=False).source == "recorded"
    world["scale"] = 2.0  # different weights: the recorded table does not apply
    changed = studies.run_study("toy", "mnist_cnn", "smoke", 0, verbose=False)
    assert changed.source == "computed" and changed.fingerprint != study.fingerprint
    assert changed.table["accuracy"].iloc[1] == pytest.approx(0.42)
    studies.record_study(changed)  # replaces the stale recording
    assert not path.exists() and len(list(path.parent.glob("toy-*.json"))) == 1


def test_a_new_study_version_recomputes(world, monkeypatch):
    studies.run_study("toy", "mnist_cnn", "smoke", 0, verbose=False)
    spec = studies.STUDIES["toy"]
    monkeypatch.setitem(studies.STUDIES, "toy", studies.StudySpec("toy", spec.target, 2))
    assert studies.run_study("toy", "mnist_cnn", "smoke", 0, verbose=False).source == "computed"
    assert world["calls"] == 2


def test_a_corrupt_cache_file_is_recomputed_not_used(world):
    study = studies.run_study("toy", "mnist_cnn", "smoke", 0, verbose=False)
    study.path.write_text("{not json")
    assert studies.run_study("toy", "mnist_cnn", "smoke", 0, verbose=False).source == "computed"
    assert json.loads(study.path.read_text())["study"] == "toy"  # rewritten whole


def test_fingerprint_depends_on_values_and_names():
    a, b = _Model(1.0), _Model(1.0)
    assert studies.weights_fingerprint(a) == studies.weights_fingerprint(b)
    b.weights[0].name = "other/kernel:0"
    assert studies.weights_fingerprint(a) != studies.weights_fingerprint(b)
    assert studies.weights_fingerprint(a) != studies.weights_fingerprint(_Model(1.0 + 1e-6))


def test_bad_names_are_refused(world):
    with pytest.raises(ValueError, match="unknown study 'nope'"):
        studies.run_study("nope", "mnist_cnn")
    with pytest.raises(ValueError, match="unknown model"):
        studies.run_study("toy", "resnet")
    with pytest.raises(ValueError, match="size must be one of"):
        studies.run_study("toy", "mnist_cnn", size="huge")
    with pytest.raises(ValueError, match="identifier"):
        studies.register_study("not a name", lambda *a: None)
    with pytest.raises(TypeError, match="module:function"):
        studies.register_study("fine", "no_colon")


def test_a_study_for_some_models_refuses_others(world, monkeypatch):
    spec = studies.STUDIES["toy"]
    monkeypatch.setitem(studies.STUDIES, "toy", studies.StudySpec("toy", spec.target, 1, "", ("mobilenet_v2",)))
    with pytest.raises(ValueError, match="applies to mobilenet_v2, not 'mnist_cnn'"):
        studies.run_study("toy", "mnist_cnn", "smoke")


def test_an_infinite_sqnr_reads_back_as_infinite(world, monkeypatch):
    spec = studies.STUDIES["toy"]
    table = pd.DataFrame({"variant": ["float32", "int8"], "output_sqnr_db": [np.inf, 40.0],
                          "note": [None, "x"]})
    monkeypatch.setitem(studies.STUDIES, "toy", studies.StudySpec("toy", lambda *a: table, 1))
    studies.run_study("toy", "mnist_cnn", "smoke", 0, verbose=False)
    cached = studies.run_study("toy", "mnist_cnn", "smoke", 0, verbose=False)
    assert cached.source == "cached" and cached.table["output_sqnr_db"].tolist() == [np.inf, 40.0]


def test_a_file_holding_another_study_is_not_used(world):
    study = studies.run_study("toy", "mnist_cnn", "smoke", 0, verbose=False)
    data = json.loads(study.path.read_text())
    data["model"] = "mobilenet_v2"  # e.g. copied over by hand
    study.path.write_text(json.dumps(data))
    assert studies.run_study("toy", "mnist_cnn", "smoke", 0, verbose=False).source == "computed"


def test_seed_must_be_a_non_negative_integer(world):
    for seed in (-1, True, 1.5):
        with pytest.raises(ValueError, match="seed must be an integer"):
            studies.run_study("toy", "mnist_cnn", "smoke", seed, verbose=False)


def test_show_lays_several_models_out_through_the_studys_view(world, monkeypatch):
    view = studies.View(("bits",), ("model", "label"), "accuracy", percent=True)
    compute = studies.STUDIES["toy"].target
    monkeypatch.setitem(studies.STUDIES, "toy", studies.StudySpec(
        "toy", lambda model, *rest: compute(model, *rest).assign(model=model), 1, view=view))
    joint = studies.run_studies("toy", ["mnist_cnn", "mobilenet_v1"], "smoke", 0)
    assert joint.table["model"].tolist() == ["mnist_cnn"] * 2 + ["mobilenet_v1"] * 2
    shown = joint.show()
    assert list(shown.index) == [8, 3]  # the order measured, not sorted
    assert shown.loc[3, ("mnist_cnn", "per-channel")] == 41.0  # accuracy in percent
    assert np.isnan(shown.loc[8, ("mnist_cnn", "per-channel")])
    assert joint.show("bits").loc[8, ("mobilenet_v1", "per-tensor")] == 8  # another column: not scaled
    assert "mobilenet_v1" in joint._repr_html_() and "computed just now" in joint._repr_html_()
    with pytest.raises(ValueError, match="no column 'sqnr'"):
        joint.show("sqnr")
    only_low = studies.View(("bits",), ("model", "label"), "accuracy", rows="bits < 8").show(joint.table)
    assert list(only_low.index) == [3]


def test_show_without_a_view_is_the_table_and_bad_model_lists_are_named(world):
    study = studies.run_study("toy", "mnist_cnn", "smoke", 0, verbose=False)
    pd.testing.assert_frame_equal(study.show(), study.table)
    with pytest.raises(ValueError, match="no view"):
        study.show("accuracy")
    for models in ("mnist_cnn", []):
        with pytest.raises(ValueError, match="non-empty list"):
            studies.run_studies("toy", models, "smoke", 0)


def test_a_study_for_the_cnns_refuses_the_transformer_and_one_for_it_fingerprints_it(world, monkeypatch):
    import qlab.zoo.transformer as transformer
    from qlab.zoo.models import MODELS

    with pytest.raises(ValueError, match=f"applies to {', '.join(MODELS)}, not 'patch_encoder'"):
        studies.run_study("toy", "patch_encoder", "smoke")
    monkeypatch.setattr(transformer, "load_or_train_encoder", lambda size, seed, verbose=0: _Model(3.0))
    spec = studies.STUDIES["toy"]
    monkeypatch.setitem(studies.STUDIES, "toy", studies.StudySpec("toy", spec.target, 1, "", ("patch_encoder",)))
    study = studies.run_study("toy", "patch_encoder", "smoke", 0, verbose=False)
    assert study.fingerprint == studies.weights_fingerprint(_Model(3.0)) != studies.weights_fingerprint(_Model(1.0))


def test_record_all_runs_each_study_on_the_models_it_applies_to(world, monkeypatch):
    import qlab.zoo.transformer as transformer

    monkeypatch.setattr(transformer, "load_or_train_encoder", lambda size, seed, verbose=0: _Model(3.0))
    compute = studies.STUDIES["toy"].target
    monkeypatch.setattr(studies, "STUDIES", {
        "toy": studies.StudySpec("toy", compute, 1),  # the CNNs
        "encoder_only": studies.StudySpec("encoder_only", compute, 1, "", ("patch_encoder",))})
    paths = studies.record_all(["mnist_cnn", "patch_encoder"], 0, verbose=False)
    assert [p.name.split("-")[:3] for p in paths] == [["toy", "v1", "mnist_cnn"],
                                                     ["encoder_only", "v1", "patch_encoder"]]
    # "all": each study on every model it applies to, a narrow model named by its study among them
    monkeypatch.setitem(studies.STUDIES, "narrow_too", studies.StudySpec("narrow_too", compute, 1, "",
                                                                         ("mnist_cnn", "mobilenet_v2_035")))
    paths = studies.record_all("all", 0, verbose=False)
    assert [p.name.split("-")[:3] for p in paths] == [
        ["toy", "v1", "mnist_cnn"], ["toy", "v1", "mobilenet_v1"], ["toy", "v1", "mobilenet_v2"],
        ["encoder_only", "v1", "patch_encoder"], ["narrow_too", "v1", "mnist_cnn"],
        ["narrow_too", "v1", "mobilenet_v2_035"]]


def test_study_figures_reduce_the_recorded_tables_of_studies_that_have_a_figures_function(world, monkeypatch):
    compute = studies.STUDIES["toy"].target
    monkeypatch.setitem(studies.STUDIES, "toy", studies.StudySpec(
        "toy", compute, 1, figures=lambda table: {"best": float(table["accuracy"].max())}))
    monkeypatch.setitem(studies.STUDIES, "plain", studies.StudySpec("plain", compute, 1))
    with_figures = studies.record_study(studies.run_study("toy", "mnist_cnn", "smoke", 0, verbose=False))
    without = studies.record_study(studies.run_study("plain", "mnist_cnn", "smoke", 0, verbose=False))
    assert studies.study_figures([with_figures, without]) == {"toy": {"mnist_cnn": {"best": 0.99}}}
    assert studies.study_figures([without]) == {}


def test_a_figures_function_is_named_like_a_target():
    with pytest.raises(TypeError, match="figures must be a function, 'module:function' or None, got 'no_colon'"):
        studies.register_study("fine", "a:b", figures="no_colon")
    assert "fine" not in studies.STUDIES
    for name in ("layer_bits", "keras3_qat"):  # the transformer studies the goals read
        assert studies.get_study(name).figures_function() is not None
        assert studies.get_study(name).models_applied() == ("patch_encoder",)
    assert studies.get_study("keras3_quantization").figures_function() is None
