"""``qlab train``: train the zoo models, their QAT and Deep Compression fine-tunes from scratch, as shipped.

The shipped models in ``data/models/`` (:mod:`qlab.zoo.shipped`) were made by
:func:`train_zoo` at the ``full`` budget. It trains in a fresh, temporary cache with the
shipped models switched off, so nothing is reused, then writes each result in the shipped
format to ``output`` and says whether its weights are bit for bit the shipped ones.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from functools import partial
from typing import Any, Callable, Iterator, Mapping, Sequence

import pandas as pd

from qlab.files.paths import ARTIFACTS_ENV, environment_variable
from qlab.qat.low_bit import SHIPPED_LOW_BIT
from qlab.zoo.shipped import (find_entry, ship_entry, shipped_dir, shipped_models_ignored,
                               values_sha256)

#: The fine-tunes shipped beside each zoo model (the lessons load them in full mode).
SHIPPED_QAT_VARIANTS = ("qat_int8", "qat_4bit", "qat_partial")
#: The Deep Compression stages shipped beside each zoo model (:mod:`qlab.compression.deep_compression`): the ones
#: ``qlab compare``'s variants load. The ``tuned`` control is only needed by lesson 09's study, which is recorded.
SHIPPED_DC_STAGES = ("pruned", "clustered", "pruned_clustered", "pqat", "cqat", "pcqat")


@contextlib.contextmanager
def _fresh_cache(folder: Path) -> Iterator[None]:
    """Within the block the model cache is ``folder`` and the shipped models are ignored."""
    with environment_variable(ARTIFACTS_ENV, str(folder)), shipped_models_ignored():
        yield


def _entries(models: Sequence[str], variants: Sequence[str], stages: Sequence[str], size: str, seed: int,
             verbose: int | str, low_bit: Mapping[str, Sequence[int]]) -> list[tuple[str, dict, Callable[[], Any]]]:
    """``(label, config, load)`` of every entry to train: float models, QAT fine-tunes, Deep Compression,
    and the low-bit QAT fine-tunes of ``low_bit``'s models (model -> weight bit widths)."""
    from qlab.compression import deep_compression as dc
    from qlab.qat import low_bit as lb
    from qlab.zoo import transformer
    from qlab.zoo.models import load_or_train, training_config
    from qlab.qat.training import load_or_fine_tune, qat_config

    encoders = [(f"{transformer.NAME}-{size}-s{seed}", transformer.encoder_config(size, seed),
                 partial(transformer.load_or_train_encoder, size, seed, verbose))
                for m in models if m == transformer.NAME]
    models = [m for m in models if m != transformer.NAME]  # TFMOT's fine-tunes need tf_keras models

    floats = [(f"{m}-{size}-s{seed}", training_config(m, size, seed),
               partial(load_or_train, m, size, seed, verbose)) for m in models]
    qats = [(f"{m}-{size}-s{seed}-{v}", qat_config(m, v, size, seed),
             partial(load_or_fine_tune, m, v, size, seed, verbose)) for m in models for v in variants]
    dcs = [(dc.stage_label(m, s, size, seed), dc.stage_config(m, s, size, seed),
            partial(dc.load_stage, m, s, size, seed, verbose)) for m in models for s in stages]
    lows = [(lb.low_bit_label(m, bits, "qat", size, seed), lb.low_bit_config(m, bits, "qat", size, seed),
             partial(lb.load_or_fine_tune_low_bit, m, bits, "qat", size, seed, verbose))
            for m in models for bits in low_bit.get(m, ())]
    return floats + encoders + qats + dcs + lows


def train_zoo(models: Sequence[str], variants: Sequence[str] = SHIPPED_QAT_VARIANTS,
              size: str = "full", seed: int = 0, output: str | os.PathLike | None = None,
              verbose: int | str = 0, stages: Sequence[str] = SHIPPED_DC_STAGES,
              low_bit: Mapping[str, Sequence[int]] | None = None) -> pd.DataFrame:
    """Train ``models``, their QAT ``variants`` and Deep Compression ``stages`` from scratch into ``output``.

    ``low_bit``: model -> weight bit widths of the low-bit QAT fine-tunes to make for it (:mod:`qlab.qat.low_bit`; default :data:`~qlab.qat.low_bit.SHIPPED_LOW_BIT`).

    Returns one row per entry: the sha256 of its weight values, the compressed size, and
    whether those values are identical to the shipped ones (None when it is not shipped).
    """
    from qlab.files.paths import artifacts_dir
    from qlab.zoo.cache import entry_dir
    from qlab.compression.deep_compression import check_stage
    from qlab.zoo import transformer
    from qlab.zoo.models import check_size, get_spec

    check_size(size)
    for name in models:
        if name != transformer.NAME:
            get_spec(name)
    for stage in stages:
        check_stage(stage)
    output = Path(output) if output else artifacts_dir() / "trained" / size
    output.mkdir(parents=True, exist_ok=True)
    reference = shipped_dir()
    rows = []
    with tempfile.TemporaryDirectory(prefix="qlab-train-") as tmp, _fresh_cache(Path(tmp)):
        low_bit = SHIPPED_LOW_BIT if low_bit is None else low_bit
        for label, config, load in _entries(models, variants, stages, size, seed, verbose, low_bit):
            entry = ship_entry(label, entry_dir(label, config), output, values_sha256(load()))
            rows.append(_row(label, entry, reference, config))
    return pd.DataFrame(rows).set_index("entry")


def _row(label: str, entry: dict, reference: Path | None, config: dict) -> dict:
    shipped = find_entry(label, config, reference) if reference else None
    seconds = entry["info"].get("train_seconds", entry["info"].get("fine_tune_seconds"))
    return {"entry": label, "seconds": seconds, "MB (gzip)": round(entry["bytes"] / 1e6, 2),
            "weights sha256": entry["values_sha256"][:16],
            "same as shipped": None if shipped is None
            else shipped["values_sha256"] == entry["values_sha256"]}
