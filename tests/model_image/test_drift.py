"""Drift: the training data's reference, the window of scored rows, the scores on /metrics, and models without one."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from model_server import drift_metrics
from model_server.batching import MicroBatcher
from model_server.drift import DriftMonitor, DriftReferenceMismatchError, DriftSettings, check_reference
from model_server.drift_reference import (
    REFERENCE_FILE,
    DriftReference,
    DriftReferenceError,
    build_reference,
    read_reference,
    save_reference,
)
from model_server.loading import ModelLoadError, load_model
from model_server.metrics import Metrics
from model_server.parsing import Frame, parse_mlflow_json
from model_server.schema import TabularSchema, tabular_schema
from model_server.settings import load_settings
from tests.model_image.serving_helpers import Served, metric_value

pytestmark = pytest.mark.filterwarnings("ignore:X does not have valid feature names:UserWarning")

THRESHOLD = load_settings({}).drift_psi_threshold
SEEDS = range(1, 21)
WINDOW = 2000

# A population with every kind of feature the server monitors: skewed and symmetric doubles, a count (long), a string
# category and a boolean. `shifted` moves each one by an amount a model owner would call a real change.
COLUMNS = [("double", "income"), ("double", "age"), ("long", "visits"), ("string", "segment"), ("boolean", "member")]
SEGMENT_SHARES = [0.4, 0.3, 0.15, 0.1, 0.05]


def population(rng: np.random.Generator, rows: int, *, shifted: bool = False) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "income": rng.lognormal(10.5 if shifted else 10.0, 0.5, rows),  # median up by 1 sd of log income
            "age": rng.normal(52.0 if shifted else 40.0, 12.0, rows),  # mean up by 1 sd
            "visits": rng.poisson(7 if shifted else 4, rows),
            "segment": rng.choice(list("abcde"), rows, p=SEGMENT_SHARES[::-1] if shifted else SEGMENT_SHARES),
            "member": rng.random(rows) < (0.7 if shifted else 0.3),
        }
    )


def signature(columns: list[tuple[str, str]], optional: tuple[str, ...] = ()) -> TabularSchema:
    from mlflow.types import ColSpec, Schema

    schema = tabular_schema(Schema([ColSpec(t, name, required=name not in optional) for t, name in columns]))
    assert schema is not None
    return schema


def frames(schema: TabularSchema, frame: Any, rows_per_request: int = 500) -> list[Frame]:
    """The frame as the server's parser reads it from `dataframe_records` requests."""
    parsed = []
    for start in range(0, len(frame), rows_per_request):
        records = frame.iloc[start : start + rows_per_request].to_dict(orient="records")
        body = json.dumps({"dataframe_records": records}, default=lambda v: v.item()).encode()
        parsed.append(parse_mlflow_json(schema, body, 10_000)[0])
    return parsed


def monitor(reference: DriftReference, schema: TabularSchema, window: int = WINDOW) -> DriftMonitor:
    return DriftMonitor(reference, schema, DriftSettings(window, min(window, 500), THRESHOLD), Metrics())


@pytest.fixture(scope="module")
def training() -> tuple[DriftReference, TabularSchema]:
    return build_reference(population(np.random.default_rng(0), 5000)), signature(COLUMNS)


def scores_after(drift: DriftMonitor, schema: TabularSchema, frame: Any) -> dict[str, float]:
    drift.observe(frames(schema, frame))
    drift.refresh()
    return dict(drift.scores)


# ------------------------------------------------------------------------------------------------ the statistics


def test_rows_from_the_training_distribution_stay_under_the_threshold_and_shifted_rows_rise_above_it(
    training: tuple[DriftReference, TabularSchema],
) -> None:
    reference, schema = training
    assert {name: f.kind for name, f in reference.features.items()} == {
        "income": "numeric",
        "age": "numeric",
        "visits": "numeric",
        "segment": "categorical",
        "member": "categorical",
    }
    calm, shifted = [], []
    for seed in SEEDS:  # fresh samples, a fresh window each time: the pass/fail is not one lucky draw
        rng = np.random.default_rng(seed)
        calm.append(scores_after(monitor(reference, schema), schema, population(rng, WINDOW)))
        drift = monitor(reference, schema)
        shifted.append(scores_after(drift, schema, population(rng, WINDOW, shifted=True)))
        assert drift.drifted_ratio == 1.0
    for name in reference.features:
        worst_calm = max(scores[name] for scores in calm)
        least_shifted = min(scores[name] for scores in shifted)
        assert worst_calm < THRESHOLD, (name, worst_calm)
        assert least_shifted > THRESHOLD, (name, least_shifted)
        # Not a near miss either way: the two populations are told apart by a wide margin.
        assert least_shifted > 2 * worst_calm


def test_the_window_slides_so_old_rows_stop_counting(training: tuple[DriftReference, TabularSchema]) -> None:
    reference, schema = training
    rng = np.random.default_rng(7)
    drift = monitor(reference, schema)
    assert max(scores_after(drift, schema, population(rng, WINDOW, shifted=True)).values()) > THRESHOLD
    half = scores_after(drift, schema, population(rng, WINDOW // 2))
    assert drift.window_rows == WINDOW
    back = scores_after(drift, schema, population(rng, WINDOW // 2))
    assert max(back.values()) < THRESHOLD < max(half.values())


def test_no_score_until_the_window_holds_enough_rows(training: tuple[DriftReference, TabularSchema]) -> None:
    reference, schema = training
    drift = DriftMonitor(reference, schema, DriftSettings(WINDOW, 1000, THRESHOLD), Metrics())
    scores_after(drift, schema, population(np.random.default_rng(3), 999, shifted=True))
    assert all(math.isnan(score) for score in drift.scores.values())
    assert math.isnan(drift.drifted_ratio)
    scores_after(drift, schema, population(np.random.default_rng(4), 1, shifted=True))
    assert drift.drifted_ratio > 0


def test_unseen_categories_and_missing_values_count_as_drift(training: tuple[DriftReference, TabularSchema]) -> None:
    reference, _ = training
    # The same model, with `segment` and `income` optional: requests may leave them out, and income may be null.
    schema = signature(COLUMNS, optional=("segment", "income"))
    rng = np.random.default_rng(11)
    calm = population(rng, WINDOW)
    assert max(scores_after(monitor(reference, schema), schema, calm).values()) < THRESHOLD

    novel = calm.copy()
    novel.loc[: WINDOW // 4, "segment"] = "z"  # a category the training data never had
    scores = scores_after(monitor(reference, schema), schema, novel)
    assert scores["segment"] > THRESHOLD
    assert scores["age"] < THRESHOLD

    nulls = calm.copy()
    nulls.loc[: WINDOW // 4, "income"] = None
    scores = scores_after(monitor(reference, schema), schema, nulls)
    assert scores["income"] > THRESHOLD

    # A client that stops sending the optional columns: every row is missing them.
    drift = monitor(reference, schema)
    scores = scores_after(drift, schema, calm.drop(columns=["segment", "income"]))
    assert scores["segment"] > THRESHOLD
    assert scores["income"] > THRESHOLD
    assert scores["age"] < THRESHOLD
    assert drift.drifted_ratio == pytest.approx(2 / 5)


def test_signature_columns_without_a_reference_are_not_monitored(
    training: tuple[DriftReference, TabularSchema],
) -> None:
    reference, _ = training
    schema = signature([*COLUMNS, ("double", "new_feature")])
    drift = monitor(reference, schema)
    frame = population(np.random.default_rng(5), WINDOW)
    frame["new_feature"] = 1.0
    assert set(scores_after(drift, schema, frame)) == set(reference.features)
    assert "new_feature" not in drift.describe()["features"]


def test_a_reference_for_some_double_columns_scores_those_alike(wine_features: Any) -> None:
    # All-double signatures arrive as one matrix per request; a reference for some of the columns takes those.
    schema = signature([("double", str(name)) for name in wine_features.columns])
    full = build_reference(wine_features)
    some = DriftReference(rows=full.rows, features={n: full.features[n] for n in ("proline", "alcohol")})
    rng = np.random.default_rng(9)
    rows = wine_features.iloc[rng.integers(0, len(wine_features), WINDOW)] * 1.1
    parsed = frames(schema, rows, rows_per_request=7)
    assert all(f.matrix is not None for f in parsed)
    everything, part = monitor(full, schema), monitor(some, schema)
    for drift in (everything, part):
        drift.observe(parsed)
        drift.refresh()
    assert part.scores == {"alcohol": everything.scores["alcohol"], "proline": everything.scores["proline"]}


# ------------------------------------------------------------------------------------------------ the reference file


def test_the_reference_is_reproducible_and_round_trips(tmp_path: Path) -> None:
    frame = population(np.random.default_rng(0), 1000)
    first = save_reference(build_reference(frame), tmp_path)
    assert first.name == REFERENCE_FILE
    again = build_reference(frame.copy())
    assert first.read_text() == again.model_dump_json(indent=1) + "\n"  # same data, same bytes (cached layers)
    assert read_reference(tmp_path) == again
    assert read_reference(tmp_path / "absent") is None


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d["features"]["age"]["counts"].append(3), "counts must hold"),
        (lambda d: d["features"]["age"].update(edges=[3.0, 1.0]), "strictly increasing"),
        (lambda d: d["features"]["segment"].update(kind="text"), "features.segment"),
        (lambda d: d.update(rows=d["rows"] + 1), "add up to"),
    ],
)
def test_a_broken_reference_is_refused_naming_the_key(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], words: str
) -> None:
    document = json.loads(build_reference(population(np.random.default_rng(0), 500)).model_dump_json())
    edit(document)
    (tmp_path / REFERENCE_FILE).write_text(json.dumps(document))
    with pytest.raises(DriftReferenceError, match=words):
        read_reference(tmp_path)


def test_build_reference_refuses_what_it_cannot_summarise() -> None:
    import pandas as pd

    with pytest.raises(DriftReferenceError, match="'when' has dtype datetime64"):
        build_reference(pd.DataFrame({"when": pd.to_datetime(["2024-01-01", "2024-01-02"])}))
    with pytest.raises(DriftReferenceError, match="does not have: \\['nope'\\]"):
        build_reference(pd.DataFrame({"x": [1.0]}), categorical=["nope"])


def test_a_reference_for_other_columns_is_refused_at_load(
    training: tuple[DriftReference, TabularSchema], wine_model: Path, wine_features: Any, tmp_path: Path
) -> None:
    reference, schema = training
    with pytest.raises(DriftReferenceMismatchError, match="describes \\['income', 'visits', 'segment', 'member'\\]"):
        check_reference(reference, signature([("double", "age")]))
    numeric_segment = DriftReference.model_validate(
        {"rows": 1, "features": {"segment": {"kind": "numeric", "edges": [], "counts": [1]}}}
    )
    with pytest.raises(DriftReferenceMismatchError, match="'segment' is numeric in the reference but the column is"):
        check_reference(numeric_segment, schema)
    # The image's build-time check loads the model the same way: a mismatched reference never ships.
    model_dir = tmp_path / "wine"
    shutil.copytree(wine_model, model_dir)
    with_vintage = wine_features.assign(vintage=2019.0)
    save_reference(build_reference(with_vintage), model_dir)
    with pytest.raises(ModelLoadError, match="describes \\['vintage'\\], which the model's signature does not have"):
        load_model(load_settings({"MODEL_DIR": str(model_dir)}))


# ------------------------------------------------------------------------------------------------ in the batch path


async def test_only_rows_the_model_scored_enter_the_window(wine_model: Path, wine_features: Any) -> None:
    loaded = load_model(load_settings({"MODEL_DIR": str(wine_model)}))
    assert loaded.drift_reference is not None
    assert loaded.schema is not None
    drift = DriftMonitor(loaded.drift_reference, loaded.schema, DriftSettings(1000, 1, THRESHOLD), Metrics())
    good = frames(loaded.schema, wine_features.iloc[:3], rows_per_request=2)
    bad = Frame(4, matrix=np.ones((4, 5)))  # the model refuses it (wrong width); its rows were never scored
    batcher = MicroBatcher(loaded.scorer, max_rows=256, mergeable=True, on_scored=drift.observe)
    batcher.start()
    try:
        requests = [batcher.predict(f, None) for f in [good[0], bad, good[1]]]
        answers = await asyncio.gather(*requests, return_exceptions=True)
    finally:
        await batcher.stop()
    assert isinstance(answers[1], ValueError)
    assert drift.window_rows == 3


# ------------------------------------------------------------------------------------------------ the served model


def scrape(served: Served) -> str:
    return httpx.get(served.url("/metrics")).text


def score_of(text: str, feature: str) -> float:
    return metric_value(text, drift_metrics.FEATURE_SCORE, {drift_metrics.FEATURE_LABEL: feature})


def post_rows(served: Served, frame: Any, rows_per_request: int = 100) -> None:
    for start in range(0, len(frame), rows_per_request):
        chunk = frame.iloc[start : start + rows_per_request]
        body = {"dataframe_split": {"columns": list(chunk.columns), "data": chunk.values.tolist()}}
        assert served.post_json("/invocations", body).status_code == 200


def test_the_served_model_exports_drift_scores_that_rise_with_shifted_traffic(wine: Served, wine_features: Any) -> None:
    version = httpx.get(wine.url("/version")).json()
    drift = version["drift"]
    assert drift["monitoring"] == "on"
    assert drift["features"] == list(wine_features.columns)
    window = drift["window_rows"]  # the session server's DRIFT_WINDOW_ROWS

    rng = np.random.default_rng(2024)
    # Traffic like the training data: rows drawn from it (with replacement), a whole window of them.
    calm = wine_features.iloc[rng.integers(0, len(wine_features), window)]
    post_rows(wine, calm)
    text = scrape(wine)
    assert metric_value(text, drift_metrics.MONITORING_ENABLED) == 1
    assert metric_value(text, drift_metrics.WINDOW_ROWS) == window
    threshold = metric_value(text, drift_metrics.THRESHOLD)
    assert threshold == THRESHOLD
    calm_scores = {name: score_of(text, name) for name in wine_features.columns}
    assert max(calm_scores.values()) < threshold, calm_scores
    assert metric_value(text, drift_metrics.DRIFTED_FEATURES_RATIO) == 0

    # Three measurements drift by one standard deviation; the rest stay as trained.
    moved = ["alcohol", "proline", "hue"]
    shifted = wine_features.iloc[rng.integers(0, len(wine_features), window)].copy()
    shifted[moved] += wine_features[moved].std()
    post_rows(wine, shifted)
    text = scrape(wine)
    for name in wine_features.columns:
        score = score_of(text, name)
        assert (score > threshold) == (name in moved), (name, score)
    share = len(moved) / len(drift["features"])
    assert metric_value(text, drift_metrics.DRIFTED_FEATURES_RATIO) == pytest.approx(share)


def test_a_model_without_a_reference_serves_as_before_and_says_monitoring_is_off(session_servers: Any) -> None:
    typed: Served = session_servers.typed
    body = {"dataframe_split": {"columns": ["n", "i", "b", "s", "x"], "data": [[1, 2, True, "a", 0.5]]}}
    assert typed.post_json("/invocations", body).status_code == 200
    drift = httpx.get(typed.url("/version")).json()["drift"]
    assert drift == {"monitoring": "off", "reason": f"the model has no drift reference ({REFERENCE_FILE})"}
    text = scrape(typed)
    assert f"{drift_metrics.MONITORING_ENABLED} 0.0" in text
    assert f"{drift_metrics.FEATURE_SCORE}{{" not in text  # no feature series at all
