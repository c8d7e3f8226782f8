"""Side by side with `mlflow models serve` on the same models: the same request gets the same bytes back."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest

from tests.model_image.serving_helpers import Served

pytestmark = pytest.mark.integration


def both(ours: Served, theirs: Served, body: bytes, content_type: str = "application/json") -> tuple[Any, Any]:
    headers = {"content-type": content_type}
    return (
        httpx.post(ours.url("/invocations"), content=body, headers=headers),
        httpx.post(theirs.url("/invocations"), content=body, headers=headers),
    )


JSON = "application/json"


def js(document: Any) -> tuple[bytes, str]:
    return json.dumps(document).encode(), JSON


def wine_bodies(features: Any) -> dict[str, tuple[bytes, str]]:
    one, hundred, three = features.iloc[[5]], features.sample(100, random_state=1), features.iloc[[0, 70, 140]]
    row = one.values[0].tolist()
    records = three.to_dict(orient="records")
    columns = list(features.columns)

    def split(data: Any, names: list[str] = columns, **extra: Any) -> dict[str, Any]:
        return {"dataframe_split": {"columns": names, "data": data}, **extra}

    return {
        "split, 1 row": js(split(one.values.tolist())),
        "split, 100 rows": js(split(hundred.values.tolist())),
        "split with index and params": js(split(three.values.tolist(), index=[7, 8, 9], params={"unused": 1})),
        "split, pretty printed": (json.dumps(split(three.values.tolist()), indent=2).encode(), JSON),
        "split, extra column": js(split([[*row, 7]], [*columns, "extra"])),
        "split, reordered": js(split([row[::-1]], columns[::-1])),
        "split, nulls": js(split([[None if i % 4 == 0 else v for i, v in enumerate(row)]])),
        "split, NaN literal": js(split([[math.nan, *row[1:]]])),
        "split, numeric strings": js(split([[str(v) for v in row]])),
        "split, charset": (json.dumps(split([row])).encode(), "application/json; charset=utf-8"),
        "records": js({"dataframe_records": records}),
        "instances": js({"instances": records}),
        "inputs, columns": js({"inputs": {c: three[c].tolist() for c in columns}}),
        "inputs, one row of scalars": js({"inputs": dict(zip(columns, row, strict=True))}),
        "csv": (hundred.head(10).to_csv(index=False).encode(), "text/csv"),
    }


def test_wine_answers_are_byte_identical(session_servers: Any, wine_features: Any) -> None:
    ours, theirs = session_servers.wine, session_servers.mlflow_wine
    for name, (body, content_type) in wine_bodies(wine_features).items():
        mine, reference = both(ours, theirs, body, content_type)
        assert reference.status_code == 200, (name, reference.text)
        assert mine.status_code == 200, (name, mine.text)
        assert mine.content == reference.content, name
        assert mine.headers["content-type"] == reference.headers["content-type"] == "application/json", name


TYPED_RECORDS = [
    {"n": 1, "i": 2, "b": True, "s": "plain", "x": 1 / 3},
    {"n": -(2**62), "i": -7, "b": False, "s": 'ünïcødé ☃ "quoted"', "x": 1e-7},
    {"n": 0, "i": 2**31 - 1, "b": True, "s": "", "x": 1.5e16},
    {"n": 3, "i": 0, "b": False, "s": "tab\tnewline\n", "x": -0.0},
]


@pytest.mark.parametrize("rows", [1, 4])
def test_typed_dataframe_answers_are_byte_identical(session_servers: Any, rows: int) -> None:
    ours, theirs = session_servers.typed, session_servers.mlflow_typed
    records = TYPED_RECORDS[:rows]
    columns = ["n", "i", "b", "s", "x"]
    bodies = [
        json.dumps({"dataframe_records": records}).encode(),
        json.dumps(
            {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in records]}}
        ).encode(),
        json.dumps({"inputs": {c: [r[c] for r in records] for c in columns}}).encode(),
    ]
    for body in bodies:
        mine, reference = both(ours, theirs, body)
        assert (mine.status_code, reference.status_code) == (200, 200), (mine.text, reference.text)
        assert mine.content == reference.content


def test_a_client_written_for_mlflow_serve_works_unchanged(session_servers: Any, wine_features: Any) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    frame = wine_features.sample(20, random_state=3)
    answers = []
    for served in (session_servers.wine, session_servers.mlflow_wine):
        client = ScoringServerClient("127.0.0.1", served.port)  # type: ignore[no-untyped-call]
        client.wait_server_ready(timeout=10)  # type: ignore[no-untyped-call]
        answers.append(client.invoke(frame).get_predictions())
    ours, theirs = answers
    assert ours.equals(theirs)
    assert len(ours) == 20


def test_refusals_have_mlflows_error_shape(session_servers: Any) -> None:
    body = json.dumps({"dataframe_split": {"columns": ["alcohol"], "data": [[1.0]]}}).encode()
    mine, reference = both(session_servers.wine, session_servers.mlflow_wine, body)
    assert mine.status_code == reference.status_code == 400
    assert {"error_code", "message"} <= mine.json().keys() & reference.json().keys()
    assert "alcohol" in reference.json()["message"]
    assert "Missing column 'malic_acid'" in mine.json()["message"]
