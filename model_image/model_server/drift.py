"""Drift in the server: the rows it scored, in a sliding window, compared per feature with the training data.

The comparison is the population stability index (PSI) of each feature: sum over buckets of (q - p) * ln(q / p), p the
training share of a bucket (from the model's drift reference, `model_server.drift_reference`), q the window's share.
Buckets are the reference's quantile bins for numbers, its most frequent values plus "other" for categories, and one
bucket for missing values either way; a share of 0 counts as 1e-4 so a bucket that is new or gone scores high instead
of infinite. Rule of thumb: under 0.1 no shift, 0.1-0.25 moderate, above 0.25 significant (default threshold 0.2).

Why a few lines of numpy and not a library: the drift libraries (evidently, nannyml, alibi-detect) compare two raw
datasets, so the image would carry the training rows rather than a summary, and they build pandas frames and reports
per call; they also bring heavy dependency trees (evidently: plotly and nltk; alibi-detect: TensorFlow or PyTorch
backends, and its licence is the Business Source License since January 2024, SeldonIO/alibi-detect oss_commits.md);
scipy has no PSI. Over a summary, PSI is a searchsorted, a bincount and one sum per feature.

Cost on the request path: after a predict the batcher hands the scored frames here, and each is copied into a
preallocated ring buffer (one numpy slice assignment per request, on the event loop; no bucketing, no allocation per
row). Bucketing and scores are computed when `/metrics` is scraped, or every DRIFT_REFRESH_SECONDS (so that with
WORKERS > 1 every worker's gauges stay current), and only if rows arrived since the last computation.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from model_server.drift_reference import (
    REFERENCE_FILE,
    CategoricalFeature,
    DriftReference,
    NumericFeature,
    categorical_buckets,
    numeric_buckets,
)
from model_server.metrics import Metrics
from model_server.parsing import Frame
from model_server.schema import Kind, TabularSchema

log = logging.getLogger("model_server.drift")

SHARE_FLOOR = 1e-4


class DriftReferenceMismatchError(ValueError):
    """The drift reference does not describe the model's inputs; the message names the features at fault."""


def psi(expected: NDArray[np.float64], actual: NDArray[np.float64]) -> float:
    """Population stability index of `actual` counts against `expected` counts over the same buckets."""
    p = np.maximum(expected / expected.sum(), SHARE_FLOOR)
    q = np.maximum(actual / max(actual.sum(), 1.0), SHARE_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def check_reference(reference: DriftReference, schema: TabularSchema) -> None:
    """Every reference feature must be a signature column, and a numeric one must be a number column."""
    problems = []
    missing = [name for name in reference.features if name not in schema.by_name]
    if missing:
        problems.append(
            f"the reference describes {missing}, which the model's signature does not have "
            f"(its columns: {schema.describe()})"
        )
    for name, feature in reference.features.items():
        column = schema.by_name.get(name)
        if column is not None and feature.kind == "numeric" and column.kind not in (Kind.FLOAT, Kind.INT):
            problems.append(f"feature {name!r} is numeric in the reference but the column is {column.mlflow_type}")
    if problems:
        raise DriftReferenceMismatchError(f"{REFERENCE_FILE} does not match the model: " + "; ".join(problems))


@dataclass(frozen=True)
class DriftSettings:
    window_rows: int
    min_rows: int
    threshold: float


class DriftMonitor:
    """Owns the window of scored rows for one model and the drift gauges computed from it.

    Not thread-safe: `observe` and `refresh` run on the event loop (the batcher calls `observe` there after a predict).
    """

    def __init__(
        self, reference: DriftReference, schema: TabularSchema, settings: DriftSettings, metrics: Metrics
    ) -> None:
        check_reference(reference, schema)
        self.reference = reference
        self.settings = settings
        self._metrics = metrics
        # Monitored features in signature order, split by how they are stored.
        names = [name for name in schema.names if name in reference.features]
        self.numeric = [n for n in names if isinstance(reference.features[n], NumericFeature)]
        self.categorical = [n for n in names if isinstance(reference.features[n], CategoricalFeature)]
        self.features = names
        self._column_position = position = {name: i for i, name in enumerate(schema.names)}
        matrix_columns = np.array([position[n] for n in self.numeric], dtype=np.intp)
        # A matrix frame (every column a double) whose columns are all monitored, in order, is copied as it is.
        self._matrix_columns: NDArray[np.intp] | None = (
            None if np.array_equal(matrix_columns, np.arange(len(schema.names))) else matrix_columns
        )
        size = settings.window_rows
        self._numbers = np.full((size, len(self.numeric)), np.nan, dtype=np.float64)
        self._objects = np.full((size, len(self.categorical)), None, dtype=object)
        self._position = 0
        self._filled = 0
        self._dirty = True
        self._edges = {
            n: np.asarray(f.edges, dtype=np.float64)
            for n, f in reference.features.items()
            if isinstance(f, NumericFeature)
        }
        self._categories = {
            n: {c: i for i, c in enumerate(f.categories)}
            for n, f in reference.features.items()
            if isinstance(f, CategoricalFeature)
        }
        self._expected = {n: f.expected() for n, f in reference.features.items()}
        self.scores: dict[str, float] = {}
        self.drifted_ratio = math.nan
        self.failure: str | None = None
        metrics.drift_enabled.set(1)
        metrics.drift_threshold.set(settings.threshold)
        self._gauges = {name: metrics.drift_score.labels(feature=name) for name in self.features}
        self.refresh()

    @property
    def window_rows(self) -> int:
        return self._filled

    def describe(self) -> dict[str, Any]:
        """What `/version` shows."""
        if self.failure is not None:
            return {"monitoring": "off", "reason": f"drift monitoring failed: {self.failure}"}
        return {
            "monitoring": "on",
            "method": "psi",
            "features": self.features,
            "threshold": self.settings.threshold,
            "window_rows": self.settings.window_rows,
            "min_rows": self.settings.min_rows,
            "reference_rows": self.reference.rows,
        }

    # -------------------------------------------------------------------------------------------- hot path

    def observe(self, frames: Sequence[Frame]) -> None:
        """Add the rows of scored frames to the window (the oldest rows leave it). Never raises: a failure here
        turns monitoring off (logged once, shown by /version and the enabled gauge), never fails a request."""
        if self.failure is not None:
            return
        try:
            self._observe(frames)
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self.failure = f"{type(exc).__name__}: {exc}"
        log.error("drift monitoring failed and is off from now on", exc_info=exc)
        self._metrics.drift_enabled.set(0)

    def _observe(self, frames: Sequence[Frame]) -> None:
        matrices = [f.matrix for f in frames if f.matrix is not None]
        if not self.categorical and len(matrices) == len(frames):
            # The common case (every column a double): the batch's rows in one copy.
            block = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
            if self._matrix_columns is not None:
                block = block[:, self._matrix_columns]
            self._append(block, None, len(block))
            self._dirty = True
            return
        for frame in frames:
            n = frame.n_rows
            if n == 0:
                continue
            numbers: NDArray[np.float64] | None = None
            objects: NDArray[Any] | None = None
            if self.numeric:
                numbers = self._numbers_of(frame, n)
            if self.categorical:
                objects = self._objects_of(frame, n)
            self._append(numbers, objects, n)
        self._dirty = True

    def _numbers_of(self, frame: Frame, n: int) -> NDArray[np.float64]:
        if frame.matrix is not None:
            return frame.matrix if self._matrix_columns is None else frame.matrix[:, self._matrix_columns]
        block = np.empty((n, len(self.numeric)), dtype=np.float64)
        columns = frame.columns or {}
        for j, name in enumerate(self.numeric):
            values = columns.get(name)
            block[:, j] = np.nan if values is None else values  # an absent optional column: missing values
        return block

    def _objects_of(self, frame: Frame, n: int) -> NDArray[Any]:
        block = np.empty((n, len(self.categorical)), dtype=object)
        columns = frame.columns or {}
        for j, name in enumerate(self.categorical):
            values = columns.get(name)
            if frame.matrix is not None:  # a double column counted as categories (build_reference's categorical=)
                values = frame.matrix[:, self._column_position[name]]
            block[:, j] = None if values is None else values
        return block

    def _append(self, numbers: NDArray[np.float64] | None, objects: NDArray[Any] | None, n: int) -> None:
        size = self.settings.window_rows
        for ring, block in ((self._numbers, numbers), (self._objects, objects)):
            if block is None:
                continue
            if n >= size:
                ring[:] = block[n - size :]
                continue
            end = self._position + n
            if end <= size:
                ring[self._position : end] = block
            else:
                split = size - self._position
                ring[self._position :] = block[:split]
                ring[: n - split] = block[split:]
        self._position = (self._position + n) % size if n < size else 0
        self._filled = min(size, self._filled + n)

    # -------------------------------------------------------------------------------------------- scores

    def refresh(self, *, force: bool = False) -> None:
        """Recompute every score from the window and set the gauges (unless no row arrived since the last time)."""
        if not (self._dirty or force) or self.failure is not None:
            return
        self._dirty = False
        filled = self._filled
        self._metrics.drift_window_rows.set(filled)
        if filled < self.settings.min_rows:
            self.scores = dict.fromkeys(self.features, math.nan)
            self.drifted_ratio = math.nan
        else:
            try:
                self.scores = self.compute(filled)
            except Exception as exc:
                self._fail(exc)
                return
            drifted = sum(score > self.settings.threshold for score in self.scores.values())
            self.drifted_ratio = drifted / len(self.features)
        for name, score in self.scores.items():
            self._gauges[name].set(score)
        self._metrics.drift_ratio.set(self.drifted_ratio)

    def compute(self, filled: int) -> dict[str, float]:
        scores: dict[str, float] = {}
        for j, name in enumerate(self.numeric):
            edges = self._edges[name]
            buckets = numeric_buckets(edges, self._numbers[:filled, j])
            scores[name] = psi(self._expected[name], np.bincount(buckets, minlength=len(edges) + 2).astype(float))
        for j, name in enumerate(self.categorical):
            categories = self._categories[name]
            buckets = categorical_buckets(categories, self._objects[:filled, j])
            scores[name] = psi(self._expected[name], np.bincount(buckets, minlength=len(categories) + 2).astype(float))
        return scores
