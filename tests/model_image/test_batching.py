"""The micro-batcher on a real model, in-process: what it merges, in what order, and how it isolates failures."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_server.batching import MicroBatcher
from model_server.loading import LoadedModel, load_model
from model_server.parsing import Frame, parse_mlflow_json
from model_server.settings import load_settings

# The server installs this filter when it picks the bare-matrix path for a scikit-learn model (loading.py); pytest
# resets warning filters between tests, so restate it for the tests that reuse one loaded model.
pytestmark = pytest.mark.filterwarnings("ignore:X does not have valid feature names:UserWarning")


@pytest.fixture(scope="module")
def wine_loaded(wine_model: Path) -> LoadedModel:
    return load_model(load_settings({"MODEL_DIR": str(wine_model)}))


def frames_of(loaded: LoadedModel, features: Any, sizes: list[int]) -> list[Frame]:
    assert loaded.schema is not None
    frames, start = [], 0
    for size in sizes:
        chunk = features.iloc[start : start + size]
        start += size
        body = {"dataframe_split": {"columns": list(chunk.columns), "data": chunk.values.tolist()}}
        frames.append(parse_mlflow_json(loaded.schema, json.dumps(body).encode(), 10_000)[0])
    return frames


class Calls:
    """Records each predict call the batcher makes (requests, rows)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, requests: int, rows: int, seconds: float) -> None:
        self.calls.append((requests, rows))


async def run_all(batcher: MicroBatcher, frames: list[Frame]) -> list[Any]:
    batcher.start()
    try:
        # Submitted in one go: all are queued before the batcher's first turn.
        return await asyncio.gather(*(batcher.predict(f, None) for f in frames), return_exceptions=True)
    finally:
        await batcher.stop()


async def test_requests_queued_together_share_one_predict_and_keep_their_order(
    wine_loaded: LoadedModel, wine_features: Any
) -> None:
    calls = Calls()
    frames = frames_of(wine_loaded, wine_features, [1, 3, 1, 5])
    batcher = MicroBatcher(wine_loaded.scorer, max_rows=256, mergeable=True, observe=calls)
    answers = await run_all(batcher, frames)
    assert calls.calls == [(4, 10)]
    expected = wine_loaded.model.predict(wine_features.iloc[:10])
    assert np.concatenate(answers).tolist() == expected.tolist()
    assert [len(a) for a in answers] == [1, 3, 1, 5]


async def test_max_rows_caps_a_batch(wine_loaded: LoadedModel, wine_features: Any) -> None:
    calls = Calls()
    frames = frames_of(wine_loaded, wine_features, [4, 4, 4, 4, 4])
    batcher = MicroBatcher(wine_loaded.scorer, max_rows=8, mergeable=True, observe=calls)
    await run_all(batcher, frames)
    assert calls.calls == [(2, 8), (2, 8), (1, 4)]


async def test_merging_off_predicts_each_request_alone(wine_loaded: LoadedModel, wine_features: Any) -> None:
    calls = Calls()
    frames = frames_of(wine_loaded, wine_features, [1, 1, 1])
    for batcher in (
        MicroBatcher(wine_loaded.scorer, max_rows=1, mergeable=True, observe=calls),
        MicroBatcher(wine_loaded.scorer, max_rows=256, mergeable=False, observe=calls),
    ):
        await run_all(batcher, frames)
    assert calls.calls == [(1, 1)] * 6


async def test_a_request_the_model_rejects_does_not_fail_its_neighbours(
    wine_loaded: LoadedModel, wine_features: Any
) -> None:
    # A frame of the wrong width passes no parser, but a scorer can still be handed one: the merged predict fails,
    # and the batcher retries each request alone so that only the bad one fails.
    good = frames_of(wine_loaded, wine_features, [2, 1])
    assert good[0].matrix is not None
    bad = Frame(1, matrix=np.ones((1, 5)))
    calls = Calls()
    batcher = MicroBatcher(wine_loaded.scorer, max_rows=256, mergeable=True, observe=calls)
    first, broken, second = await run_all(batcher, [good[0], bad, good[1]])
    assert isinstance(broken, ValueError)
    assert np.concatenate([first, second]).tolist() == wine_loaded.model.predict(wine_features.iloc[:3]).tolist()
    assert calls.calls == [(1, 2), (1, 1)]  # the failed merged call is not counted; the two good ones are


async def test_predicting_in_a_thread_gives_the_same_answers(wine_loaded: LoadedModel, wine_features: Any) -> None:
    frames = frames_of(wine_loaded, wine_features, [2, 2])
    batcher = MicroBatcher(wine_loaded.scorer, max_rows=256, mergeable=True, in_thread=True)
    answers = await run_all(batcher, frames)
    assert np.concatenate(answers).tolist() == wine_loaded.model.predict(wine_features.iloc[:4]).tolist()
