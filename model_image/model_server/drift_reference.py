"""The drift reference: a per-feature summary of the training data, stored with the model version, and its helper.

Training code calls it with the frame the model was fitted on; the file travels inside the model's artifacts, so
`python -m model_server fetch` (and the image build) brings it along with the model:

    from model_server.drift_reference import build_reference, log_reference, save_reference

    save_reference(build_reference(features), model_dir)      # after mlflow.<flavor>.save_model(..., model_dir)

    info = mlflow.sklearn.log_model(model, name="model", ...)  # no registered_model_name here, then:
    log_reference(build_reference(features), info.model_id)
    mlflow.register_model(info.model_uri, "my-model")

Register after `log_reference`: a Unity Catalog registry copies the logged model's files when the version is created
(mlflow/store/_unity_catalog/registry/rest_store.py, `create_model_version` downloads the source and `log_artifacts`
it to the version's storage), so a file added afterwards would not reach the version.

This module needs only numpy and pydantic (pandas to summarise a DataFrame, MLflow to log), so training code can use it
without the server's dependencies. The same bucketing functions summarise the training data here and the served rows in
`model_server.drift`, so a value falls into the same bin at both ends.

Numeric features: quantile bins of the training data (`edges` are the inner cut points; bin i holds
edges[i-1] <= x < edges[i]), their counts, and a count of missing values. Categorical features (strings, booleans, or
columns named in `categorical`): the most frequent values with their counts, one count for every other value, and the
missing count.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

REFERENCE_FILE = "drift-reference.json"
SCHEMA_VERSION = 1
DEFAULT_BINS = 10
DEFAULT_MAX_CATEGORIES = 50


class DriftReferenceError(ValueError):
    """A drift reference that cannot be built or read; the message names the feature or key at fault."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericFeature(_Strict):
    """A numeric feature's training distribution over quantile bins."""

    kind: Literal["numeric"] = "numeric"
    edges: list[float] = Field(description="Inner cut points, strictly increasing; bin i: edges[i-1] <= x < edges[i].")
    counts: list[Annotated[int, Field(ge=0)]] = Field(description="Training rows per bin: len(edges) + 1 values.")
    missing: int = Field(0, ge=0, description="Training rows with no value (NaN).")

    @model_validator(mode="after")
    def _consistent(self) -> NumericFeature:
        if any(not math.isfinite(e) for e in self.edges):
            raise ValueError("edges must be finite numbers")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("edges must be strictly increasing")
        if len(self.counts) != len(self.edges) + 1:
            raise ValueError(f"counts must hold len(edges) + 1 = {len(self.edges) + 1} values, got {len(self.counts)}")
        return self

    def expected(self) -> NDArray[np.float64]:
        """Training counts per bucket: the bins, then missing."""
        return np.array([*self.counts, self.missing], dtype=np.float64)


class CategoricalFeature(_Strict):
    """A categorical feature's training frequencies: its most frequent values, every other value, missing."""

    kind: Literal["categorical"] = "categorical"
    categories: list[str] = Field(description="The most frequent values, as category_key spells them.")
    counts: list[Annotated[int, Field(ge=0)]] = Field(
        description="Training rows per category, then one count for every other value: len(categories) + 1 values."
    )
    missing: int = Field(0, ge=0, description="Training rows with no value (null).")

    @model_validator(mode="after")
    def _consistent(self) -> CategoricalFeature:
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("categories must be distinct")
        if len(self.counts) != len(self.categories) + 1:
            raise ValueError(
                f"counts must hold len(categories) + 1 = {len(self.categories) + 1} values (the last counts every "
                f"other value), got {len(self.counts)}"
            )
        return self

    def expected(self) -> NDArray[np.float64]:
        """Training counts per bucket: the categories, other values, then missing."""
        return np.array([*self.counts, self.missing], dtype=np.float64)


Feature = Annotated[NumericFeature | CategoricalFeature, Field(discriminator="kind")]


class DriftReference(_Strict):
    """The training data's summary the server compares served rows with (versioned by `schema_version`)."""

    schema_version: Literal[1] = 1
    rows: int = Field(ge=1, description="Training rows summarised.")
    features: dict[str, Feature] = Field(min_length=1)

    @model_validator(mode="after")
    def _counts_add_up(self) -> DriftReference:
        for name, feature in self.features.items():
            total = sum(feature.counts) + feature.missing
            if total != self.rows:
                raise ValueError(f"feature {name!r}: its counts add up to {total}, not to rows = {self.rows}")
        return self


# ------------------------------------------------------------------------------------------------ bucketing (shared)


def category_key(value: Any) -> str | None:
    """How a categorical value is spelled in the reference; None for a missing value."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    return str(value)


def numeric_buckets(edges: NDArray[np.float64], values: NDArray[np.float64]) -> NDArray[np.intp]:
    """Bucket index per value: 0..len(edges) for the bins, len(edges) + 1 for missing (NaN)."""
    index = np.searchsorted(edges, values, side="right")
    index[np.isnan(values)] = len(edges) + 1
    return index


def categorical_buckets(categories: Mapping[str, int], values: Sequence[Any] | NDArray[Any]) -> NDArray[np.intp]:
    """Bucket index per value: the category's position, len(categories) for any other value, +1 for missing."""
    other, missing = len(categories), len(categories) + 1
    keys = (category_key(v) for v in values)
    return np.fromiter(
        (missing if k is None else categories.get(k, other) for k in keys), dtype=np.intp, count=len(values)
    )


# ------------------------------------------------------------------------------------------------ building


def _numeric(values: NDArray[np.float64], bins: int) -> NumericFeature:
    finite = values[np.isfinite(values)]
    # Cut points are training values (inverted CDF, no interpolation), so a discrete feature gets no empty inner bin.
    quantiles = np.linspace(0, 1, bins + 1)[1:-1]
    edges = np.unique(np.quantile(finite, quantiles, method="inverted_cdf")) if finite.size else np.array([])
    counts = np.bincount(numeric_buckets(edges, values), minlength=len(edges) + 2)
    return NumericFeature(edges=edges.tolist(), counts=counts[:-1].tolist(), missing=int(counts[-1]))


def _categorical(values: Sequence[Any], max_categories: int) -> CategoricalFeature:
    frequencies: dict[str, int] = {}
    missing = 0
    for value in values:
        key = category_key(value)
        if key is None:
            missing += 1
        else:
            frequencies[key] = frequencies.get(key, 0) + 1
    # Most frequent first; ties by value, so the same data gives the same file.
    ranked = sorted(frequencies.items(), key=lambda item: (-item[1], item[0]))
    kept, rest = ranked[:max_categories], ranked[max_categories:]
    return CategoricalFeature(
        categories=[k for k, _ in kept],
        counts=[c for _, c in kept] + [sum(c for _, c in rest)],
        missing=missing,
    )


def build_reference(
    features: Any,
    *,
    bins: int = DEFAULT_BINS,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    categorical: Iterable[str] = (),
) -> DriftReference:
    """Summarise a pandas DataFrame of training inputs (the columns the model's signature names).

    Numeric columns get `bins` quantile bins; string, boolean and pandas categorical columns (and those named in
    `categorical`) keep their `max_categories` most frequent values. Other dtypes (dates, objects) are refused.
    """
    import pandas as pd

    if not isinstance(features, pd.DataFrame) or features.empty:
        raise DriftReferenceError("build_reference expects a non-empty pandas DataFrame of the model's inputs")
    if bins < 2 or max_categories < 1:
        raise DriftReferenceError(f"bins must be >= 2 and max_categories >= 1, got {bins} and {max_categories}")
    as_categories = set(categorical)
    unknown = as_categories - {str(c) for c in features.columns}
    if unknown:
        raise DriftReferenceError(f"categorical names columns the frame does not have: {sorted(unknown)}")
    summary: dict[str, NumericFeature | CategoricalFeature] = {}
    for column in features.columns:
        name, series = str(column), features[column]
        if name in as_categories or _is_categorical(series):
            summary[name] = _categorical(series.astype(object).tolist(), max_categories)
        elif pd.api.types.is_numeric_dtype(series.dtype):
            summary[name] = _numeric(series.to_numpy(dtype=np.float64, na_value=np.nan), bins)
        else:
            raise DriftReferenceError(
                f"column {name!r} has dtype {series.dtype}; a drift reference summarises numbers, strings and "
                "booleans (name it in categorical= to count its values)"
            )
    return DriftReference(rows=len(features), features=summary)


def _is_categorical(series: Any) -> bool:
    """Strings, booleans and pandas categoricals (an object column only if every value is a string or a bool)."""
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return True
    if dtype == np.dtype(object):
        return bool(series.dropna().map(lambda v: isinstance(v, str | bool)).all())
    return bool(pd.api.types.is_string_dtype(dtype))


# ------------------------------------------------------------------------------------------------ files and MLflow


def save_reference(reference: DriftReference, model_dir: Path) -> Path:
    """Write the reference into a saved model's directory (next to its MLmodel file); returns the file."""
    path = Path(model_dir) / REFERENCE_FILE
    path.write_text(reference.model_dump_json(indent=1) + "\n")
    return path


def log_reference(reference: DriftReference, model_id: str) -> None:
    """Upload the reference into a logged model's artifacts (MLflow 3 `model_id`), before it is registered."""
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        MlflowClient().log_model_artifact(model_id, str(save_reference(reference, Path(tmp))))


def read_reference(model_dir: Path) -> DriftReference | None:
    """The reference stored with the model in `model_dir`, or None if it has none. Raises DriftReferenceError."""
    path = Path(model_dir) / REFERENCE_FILE
    if not path.is_file():
        return None
    try:
        return DriftReference.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'document'}: {error['msg']}" for error in exc.errors()
        )
        raise DriftReferenceError(
            f"{path} is not a drift reference this server reads (schema_version {SCHEMA_VERSION}): {problems}"
        ) from None
