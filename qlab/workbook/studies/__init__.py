"""Slow lesson sweeps, measured once and reused: recorded by ``qlab bench``, keyed by the model's weights.

A *study* is a sweep too slow for a five-minute lesson (say, per-tensor against
per-channel weights at six bit widths on a MobileNet: dozens of conversions, each
evaluated on 10,000 test images). Its table depends only on the model's weights, the
study's code version and the seed, so it is stored under a key made of those:

1. ``benchmarks/studies/`` in the repository: recorded by ``qlab bench`` and committed;
2. ``artifacts/studies/``: computed here before (by a lesson or ``qlab bench``);
3. otherwise computed now, with progress, and saved to 2.

A recorded table is used only if the weights hash matches the model loaded here, so a
lesson never shows numbers that belong to other weights. Each study function has the
signature ``compute(model_name, size, seed, verbose) -> pandas.DataFrame``; a study may also
name a ``figures(table) -> dict`` function, the few numbers of its table that the benchmark's
goals check (:func:`study_figures`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

# the training images the studies calibrate their int8 files on, per model size
from qlab.conversion.converter import CALIBRATION_SAMPLES  # noqa: F401

StudyFunction = Callable[[str, str, int, bool], pd.DataFrame]



@dataclass(frozen=True)
class View:
    """How a study's table reads best: one value column, ``index`` rows by ``columns`` columns."""

    index: tuple[str, ...]
    columns: tuple[str, ...]
    values: str
    percent: bool = False  # show ``values`` x 100 (accuracies)
    rows: str | None = None  # a ``DataFrame.query`` keeping the rows worth reading, e.g. "num_bits < 32"

    def show(self, table: pd.DataFrame, values: str | None = None) -> pd.DataFrame:
        """``table`` pivoted to this view; ``values`` another column of it (not scaled)."""
        column = self.values if values is None else values
        if column not in table.columns:
            raise ValueError(f"the study's table has no column {column!r}; it has {', '.join(table.columns)}")
        kept = table if self.rows is None else table.query(self.rows)
        shown = kept.pivot_table(index=list(self.index), columns=list(self.columns), values=column, sort=False)
        return (100 * shown if self.percent and values is None else shown).round(2)


@dataclass(frozen=True)
class StudySpec:
    """A registered study: where its function lives and the version of its code."""

    name: str
    target: str | StudyFunction  # "module:function" (imported when first run) or the function
    version: int = 1
    description: str = ""
    models: tuple[str, ...] | None = None  # the zoo models it applies to (None: the CNNs, qlab.zoo.models.MODELS)
    view: View | None = None  # how show() lays its table out (None: as measured)
    figures: str | Callable[[pd.DataFrame], dict[str, Any]] | None = None  # table -> the numbers goals check

    def function(self) -> StudyFunction:
        """The study's compute function."""
        return _resolve(self.target)

    def figures_function(self) -> Callable[[pd.DataFrame], dict[str, Any]] | None:
        """The study's ``figures`` function, or None when it has none."""
        return None if self.figures is None else _resolve(self.figures)

    def models_applied(self) -> tuple[str, ...]:
        """The zoo models the study applies to."""
        from qlab.zoo.models import MODELS

        return tuple(MODELS) if self.models is None else self.models


def _is_target(value: Any) -> bool:
    return callable(value) or (isinstance(value, str) and ":" in value)


def _resolve(target: str | Callable[..., Any]) -> Callable[..., Any]:
    """``target`` itself, or the function a ``"module:function"`` string names (imported now)."""
    if callable(target):
        return target
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


#: The lessons' studies, by name.
STUDIES: dict[str, StudySpec] = {}


def register_study(name: str, target: str | StudyFunction, version: int = 1,
                   description: str = "", models: Sequence[str] | None = None,
                   view: View | None = None,
                   figures: str | Callable[[pd.DataFrame], dict[str, Any]] | None = None) -> StudySpec:
    """Register ``target`` (a function or ``"module:function"``) as the study ``name``.

    Bump ``version`` whenever the study's code changes what it measures: older
    recorded tables then no longer match and are recomputed. ``models`` None: the zoo's
    CNNs (:data:`qlab.zoo.models.MODELS`). ``figures`` (a function or ``"module:function"``)
    reduces the study's table to the numbers the benchmark's goals check.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a study name must be an identifier, got {name!r}")
    if not _is_target(target):
        raise TypeError(f"target must be a function or 'module:function', got {target!r}")
    if figures is not None and not _is_target(figures):
        raise TypeError(f"figures must be a function, 'module:function' or None, got {figures!r}")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}")
    STUDIES[name] = StudySpec(name, target, version, description,
                              None if models is None else tuple(models), view, figures)
    return STUDIES[name]


def get_study(name: str) -> StudySpec:
    """The registered study ``name``, or a ValueError listing the valid names."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; registered studies: {', '.join(sorted(STUDIES))}")
    return STUDIES[name]


def weights_fingerprint(model: Any) -> str:
    """A short sha256 of a Keras model's weights (names, shapes, dtypes and values)."""
    import numpy as np

    digest = hashlib.sha256()
    for variable in model.weights:
        value = np.ascontiguousarray(variable.numpy())
        digest.update(f"{variable.name}|{value.dtype.str}|{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Study:
    """One study's table for one model, and where it came from (``recorded``, ``cached`` or ``computed``)."""

    name: str
    model_name: str
    size: str
    seed: int
    fingerprint: str
    table: pd.DataFrame
    source: str
    measured_at: str
    seconds: float
    path: Path | None = None

    def provenance(self) -> str:
        """One sentence: where this table comes from."""
        how = {"recorded": "measured by `qlab bench` and committed with the workbook",
               "cached": "computed earlier on this machine",
               "computed": "computed just now"}[self.source]
        return (f"{self.name} on {self.model_name} ({self.size}, seed {self.seed}): {how}, "
                f"on {self.measured_at} in {self.seconds:.0f} s, for these exact weights "
                f"(sha256 {self.fingerprint}).")

    def show(self, values: str | None = None) -> pd.DataFrame:
        """The table laid out to read (the study's :class:`View`), or as measured if it has none."""
        return show_table(self.name, self.table, values)

    def __repr__(self) -> str:
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            return f"{self.table.to_string(index=False)}\n{self.provenance()}"

    def _repr_html_(self) -> str:
        return f"{self.table.to_html(index=False, na_rep='-')}<p>{self.provenance()}</p>"


def show_table(name: str, table: pd.DataFrame, values: str | None = None) -> pd.DataFrame:
    """Study ``name``'s ``table`` through its registered :class:`View` (``values``: another column)."""
    view = get_study(name).view
    if view is None:
        if values is not None:
            raise ValueError(f"study {name!r} has no view to show {values!r} in; read its table instead")
        return table
    return view.show(table, values)


@dataclass
class Studies:
    """One study's tables for several models (:func:`run_studies`), read together."""

    name: str
    studies: list[Study]

    @property
    def table(self) -> pd.DataFrame:
        """Every model's table, one after another."""
        return pd.concat([study.table for study in self.studies], ignore_index=True)

    def show(self, values: str | None = None) -> pd.DataFrame:
        """The joint table laid out to read, as :meth:`Study.show`."""
        return show_table(self.name, self.table, values)

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{study.provenance()}</li>" for study in self.studies)
        return f"{self.show().to_html(na_rep='-')}<ul>{notes}</ul>"


def _key(spec: StudySpec, model_name: str, size: str, seed: int, fingerprint: str) -> str:
    return f"{spec.name}-v{spec.version}-{model_name}-{size}-s{seed}-{fingerprint}.json"


def recorded_dir() -> Path | None:
    """``benchmarks/studies/`` of the checkout, or None when qlab runs from a wheel."""
    from qlab.files.paths import checkout_root

    root = checkout_root()
    return None if root is None else root / "benchmarks" / "studies"


def cache_dir() -> Path:
    """``artifacts/studies/``: studies computed on this machine."""
    from qlab.files.paths import artifacts_dir

    return artifacts_dir() / "studies"


def _to_json(study: Study) -> dict[str, Any]:
    # Python values, written as JSON's Infinity/NaN extension: an SQNR of +inf (scores equal to
    # the reference) must read back as inf, not as the NaN a strict-JSON null would become
    return {"study": study.name, "model": study.model_name, "size": study.size, "seed": study.seed,
            "fingerprint": study.fingerprint, "measured_at": study.measured_at,
            "seconds": round(study.seconds, 1),
            "table": {"columns": [str(c) for c in study.table.columns],
                      "data": study.table.astype(object).values.tolist()}}


def _read(path: Path, source: str, expected: dict[str, Any]) -> Study | None:
    """The study saved at ``path``, or None if it is missing, unreadable or not the one
    ``expected`` describes (study, model, size, seed, fingerprint): then it is recomputed."""
    import logging

    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        found = {key: data[key] for key in expected}
        if found != expected:
            raise ValueError(f"it holds {found}, not {expected}")
        table = pd.DataFrame(data["table"]["data"], columns=data["table"]["columns"])
        return Study(data["study"], data["model"], data["size"], data["seed"], data["fingerprint"],
                     table, source, data["measured_at"], float(data["seconds"]), path)
    except (ValueError, KeyError, TypeError) as exc:
        logging.getLogger(__name__).warning("ignoring study file %s (%s); recomputing", path, exc)
        return None


def run_studies(name: str, models: Sequence[str], size: str = "full", seed: int = 0,
                verbose: bool = False) -> Studies:
    """:func:`run_study` for each of ``models``; ``show()`` lays the joint table out to read."""
    if isinstance(models, str) or not models:
        raise ValueError(f"models must be a non-empty list of zoo model names, got {models!r}")
    return Studies(name, [run_study(name, model, size, seed, verbose) for model in models])


def run_study(name: str, model_name: str, size: str = "full", seed: int = 0, verbose: bool = True,
              recompute: bool = False) -> Study:
    """The table of study ``name`` on zoo model ``model_name``: recorded, cached, or computed now.

    Args:
        name: a registered study (:data:`STUDIES`).
        model_name: a zoo model; it is loaded (or trained) to hash its weights.
        size, seed: the zoo model's training budget and seed.
        verbose: print where the table comes from and the study's own progress.
        recompute: ignore recorded and cached tables and measure again.
    """
    from qlab.files.io import write_json_atomic
    from qlab.zoo.models import check_size
    from qlab.numerics.validate import check_int

    spec = get_study(name)
    _check_model_name(model_name)
    if model_name not in spec.models_applied():
        raise ValueError(f"study {name!r} applies to {', '.join(spec.models_applied())}, not {model_name!r}")
    check_size(size)
    seed = check_int(seed, "seed", 0, 2**31 - 1)
    fingerprint = weights_fingerprint(_zoo_model(model_name, size, seed))
    key = _key(spec, model_name, size, seed, fingerprint)
    expected = {"study": name, "model": model_name, "size": size, "seed": seed,
                "fingerprint": fingerprint}
    places = [(recorded_dir(), "recorded"), (cache_dir(), "cached")]
    for directory, source in ([] if recompute else places):
        study = None if directory is None else _read(directory / key, source, expected)
        if study is not None:
            if verbose:
                print(study.provenance(), flush=True)
            return study
    if verbose:
        print(f"{name} on {model_name}: no committed table for these weights, measuring now", flush=True)
    start = time.perf_counter()
    table = spec.function()(model_name, size, seed, verbose)
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    study = Study(name, model_name, size, seed, fingerprint, table, "computed", stamp,
                  time.perf_counter() - start)
    study.path = write_json_atomic(cache_dir() / key, _to_json(study))
    return study


def _check_model_name(model_name: str) -> None:
    """A ValueError naming the valid models unless ``model_name`` is a zoo CNN or the zoo's transformer."""
    from qlab.zoo.models import get_spec
    from qlab.zoo.transformer import NAME

    if model_name != NAME:
        get_spec(model_name)


def _zoo_model(model_name: str, size: str, seed: int) -> Any:
    """The trained zoo model ``model_name`` (a CNN or the Keras 3 transformer), to fingerprint its weights."""
    from qlab.zoo.models import load_or_train
    from qlab.zoo.transformer import NAME, load_or_train_encoder

    if model_name == NAME:
        return load_or_train_encoder(size, seed, verbose=0)
    return load_or_train(model_name, size, seed, verbose=0)


def record_study(study: Study) -> Path:
    """Write ``study`` to ``benchmarks/studies/`` (atomically) so lessons load it; return the path."""
    from qlab.files.io import write_json_atomic

    directory = recorded_dir()
    if directory is None:
        raise RuntimeError("recording studies needs a qlab checkout (benchmarks/studies/); "
                           "qlab is running from an installed package")
    spec = get_study(study.name)
    path = write_json_atomic(directory / _key(spec, study.model_name, study.size, study.seed,
                                              study.fingerprint), _to_json(study))
    # a table for other weights or an older version of the study can never be loaded again
    for stale in directory.glob(f"{spec.name}-v*-{study.model_name}-{study.size}-s{study.seed}-*.json"):
        if stale != path:
            stale.unlink()
    return path


def record_all(models: str | Sequence[str] = "all", seed: int = 0, verbose: bool = True,
               studies: Sequence[str] | None = None) -> list[Path]:
    """Run every registered study at full size on ``models`` and record it; ``qlab bench`` calls this.

    ``"all"``: each study on every model it applies to (:meth:`StudySpec.models_applied`). A table
    already computed on this machine for the same weights is reused.
    """
    from qlab.workbook.pipeline import check_models

    paths = []
    for name in (list(STUDIES) if studies is None else studies):
        spec = get_study(name)
        for model_name in (spec.models_applied() if models == "all" else check_models(models)):
            if model_name not in spec.models_applied():
                continue
            paths.append(record_study(run_study(name, model_name, "full", seed, verbose)))
    return paths


def study_figures(paths: Sequence[str | Path]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{study: {model: figures}}`` of the recorded study files at ``paths`` whose study has a
    ``figures`` function (the others are left out); ``qlab bench`` stores it for the goals."""
    figures: dict[str, dict[str, dict[str, Any]]] = {}
    for path in paths:
        data = json.loads(Path(path).read_text())  # Python's json reads the files' Infinity and NaN
        reduce = get_study(data["study"]).figures_function()
        if reduce is not None:
            table = pd.DataFrame(data["table"]["data"], columns=data["table"]["columns"])
            figures.setdefault(data["study"], {})[data["model"]] = reduce(table)
    return figures


# The lessons' studies, one module each beside this file; they call the technique modules
# (qlab.ptq, qlab.qat, ...) and nothing there imports them. Targets are import paths, so
# importing this package loads no TensorFlow.
register_study("weight_bits", "qlab.workbook.studies.weight_bits:weight_bits_study",
               description="per-tensor vs per-channel weights (and CLE) at 8..2 weight bits, 05",
               view=View(("num_bits",), ("model", "scheme"), "accuracy", percent=True, rows="num_bits < 32"))
register_study("equalization", "qlab.workbook.studies.weight_bits:equalization_study", models=("mnist_cnn",),
               description="the constructed 8-bit collapse: per-channel, 16x8 and CLE, 05",
               view=View(("variant",), ("version",), "accuracy", percent=True))
register_study("calibration_failures", "qlab.workbook.studies.calibration_failures:calibration_failure_study",
               description="int8 with wrong representative data sets, 04",
               view=View(("representative set",), ("model",), "accuracy", percent=True))
register_study("range_estimators", "qlab.workbook.studies.range_estimators:estimator_study",
               description="min-max, percentile and MSE activation ranges at 8..4 bits, 04",
               view=View(("num_bits", "evaluated_with"), ("model", "method"), "accuracy", percent=True))
register_study("partial_qat", "qlab.workbook.studies.partial_qat:partial_qat_study", models=("mnist_cnn", "mobilenet_v2"),
               description="the all-Conv2D partial QAT (float islands) and mixed precision chosen by "
                           "per-layer sensitivity, 07")
register_study("adaround", "qlab.workbook.studies.adaround:adaround_study",
               description="nearest rounding vs AdaRound at 4, 3 and 2 weight bits, 06",
               view=View(("num_bits", "scheme"), ("rounding",), "accuracy", percent=True))
register_study("bits_picture", "qlab.workbook.studies.bits_picture:bits_picture_study",
               description="accuracy vs weight (8..2) and activation (8, 4) bits: PTQ per-tensor, best PTQ, "
                           "a float fine-tune control and QAT, 06",
               view=View(("model", "activation_bits", "weight_bits"), ("method",), "accuracy", percent=True))
register_study("litert_quantizer_routes", "qlab.workbook.studies.litert_quantizer:routes_study",
               description="the LiteRT Quantizer's static int8 beside the converter's: moving-average and min-max "
                           "calibration, identical outputs, the first differing tensor, 10")
register_study("litert_quantizer_4bit", "qlab.workbook.studies.litert_quantizer:four_bit_study",
               description="4-bit weights: the Quantizer's recipes with min-max, MSE and OCTAV weights, per-tensor "
                           "and per-channel, against TFMOT 4-bit QAT, 10")
register_study("deep_compression", "qlab.workbook.studies.deep_compression:deep_compression_study",
               description="pruning, clustering, int8 (PTQ and PCQAT) and compression, stage by stage, with a "
                           "fine-tuned float control, 09")
register_study("keras3_quantization", "qlab.workbook.studies.transformer:keras3_quantization_study",
               models=("patch_encoder",),
               description="Keras 3's model.quantize (int8, int4 by block size) in Keras and through the "
                           "converter: what the file stores, its ops, its accuracy, 11")
register_study("layer_bits", "qlab.workbook.studies.transformer:layer_bits_study", models=("patch_encoder",),
               figures="qlab.workbook.studies.transformer:layer_bits_figures",
               description="the transformer's 2-bit weight break and the share of it won back by keeping a "
                           "group of layers at 8 bits, 11")
register_study("keras3_qat", "qlab.workbook.studies.transformer:keras3_qat_study", models=("patch_encoder",),
               figures="qlab.workbook.studies.transformer:keras3_qat_figures",
               description="QAT written in Keras 3 against a float fine-tune control and PTQ, 2-bit weights, "
                           "through the LiteRT file, 11")
register_study("micro_runs", "qlab.workbook.studies.micro:micro_study",
               models=("mnist_cnn", "mobilenet_v1", "mobilenet_v2", "patch_encoder", "mobilenet_v2_035"),
               figures="qlab.workbook.studies.micro:micro_figures",
               description="every integer file on the microcontroller runtime (TFLM): its refusal, or its accuracy, "
                           "agreement with LiteRT on every test image, smallest arena and flash, 13")
