"""Every kind of bad input gets a 4xx whose message names the problem; nothing a client sends gets a 5xx."""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.model_image.serving_helpers import Served

pytestmark = pytest.mark.integration

COLUMNS = [
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280/od315_of_diluted_wines",
    "proline",
]
ROW = [13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050.0]


def split(columns: list[str] = COLUMNS, data: Any = None) -> dict[str, Any]:
    return {"dataframe_split": {"columns": columns, "data": [ROW] if data is None else data}}


def with_value(column: str, value: Any) -> dict[str, Any]:
    row = list(ROW)
    row[COLUMNS.index(column)] = value
    return split(data=[row])


JSON_CASES: list[tuple[str, Any, int, str, str | None]] = [
    # (case, body, status, words the message must contain, column the error names)
    ("missing column", split(COLUMNS[1:], [ROW[1:]]), 400, "Missing column 'alcohol' (double)", "alcohol"),
    ("wrong type", with_value("ash", "abc"), 400, "Column 'ash' expects double; row 0 has 'abc' (str)", "ash"),
    ("nested value", with_value("hue", [1, 2]), 400, "Column 'hue' expects double; row 0 has [1, 2] (list)", "hue"),
    ("object value", with_value("proline", {"a": 1}), 400, "Column 'proline' expects double", "proline"),
    ("empty batch", split(data=[]), 400, "Empty batch", None),
    ("too many rows", split(data=[ROW] * 501), 413, "Too many rows: 501 in one request, the limit is 500", None),
    ("ragged row", split(data=[ROW[:5]]), 400, "Row 0 of 'dataframe_split' has 5 values; 'columns' names 13", None),
    ("row not a list", split(data=[{"a": 1}]), 400, "Row 0 of 'dataframe_split' has a dict", None),
    ("duplicate column", split([*COLUMNS, "ash"], [[*ROW, 1.0]]), 400, "Column 'ash' appears more than once", "ash"),
    ("split not an object", {"dataframe_split": [ROW]}, 400, "'dataframe_split' must be an object", None),
    ("split without columns", {"dataframe_split": {"data": [ROW]}}, 400, "needs 'columns'", None),
    ("a list", [ROW], 400, "exactly one of the fields", None),
    ("no format field", {"rows": [ROW]}, 400, "exactly one of the fields", None),
    ("two format fields", {**split(), "inputs": {}}, 400, "got the fields ['dataframe_split', 'inputs']", None),
    ("params not an object", {**split(), "params": [1]}, 400, "'params' must be an object", None),
    ("record not an object", {"dataframe_records": [ROW]}, 400, "Record 0 of 'dataframe_records' is a list", None),
    ("positional instances", {"instances": [ROW]}, 400, "rows of positional values go in 'dataframe_split'", None),
    ("records missing a column", {"dataframe_records": [dict(zip(COLUMNS[1:], ROW[1:], strict=True))]}, 400,
     "Missing column 'alcohol'", "alcohol"),
    ("inputs uneven", {"inputs": {c: [v] * (2 if c == "ash" else 1) for c, v in zip(COLUMNS, ROW, strict=True)}},
     400, "have different numbers of values (alcohol has 1, malic_acid has 1, ash has 2", None),
    ("inputs mixed", {"inputs": {c: ([v] if c == "ash" else v) for c, v in zip(COLUMNS, ROW, strict=True)}}, 400,
     "mixes lists and single values", None),
]  # fmt: skip


@pytest.mark.parametrize("case", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_bad_json_input(wine: Served, case: tuple[str, Any, int, str, str | None]) -> None:
    _, body, status, words, column = case
    response = wine.post_json("/invocations", body)
    assert response.status_code == status, response.text
    error = response.json()
    assert words in error["message"], error["message"]
    assert error.get("column") == column
    assert error["error_code"] in {"BAD_REQUEST", "REQUEST_LIMIT_EXCEEDED"}


RAW_CASES: list[tuple[str, bytes, str, int, str]] = [
    ("bad json", b'{"dataframe_split": ', "application/json", 400, "not valid JSON"),
    ("empty body", b"", "application/json", 400, "no body"),
    ("csv missing column", b"alcohol,ash\nabc,1\n", "text/csv", 400, "Missing column 'malic_acid'"),
    (
        "csv bad value",
        (",".join(COLUMNS) + "\n" + ",".join(["x"] + [str(v) for v in ROW[1:]]) + "\n").encode(),
        "text/csv",
        400,
        "Column 'alcohol' expects double; row 0 has 'x' (str)",
    ),
    ("csv not utf-8", b"\x00\x01\x02\xff\xfe", "text/csv", 400, "not valid CSV"),
    ("csv empty", b"\n", "text/csv", 400, "not valid CSV"),
    ("parquet garbage", b"PAR1 not really", "application/vnd.apache.parquet", 400, "not a valid parquet file"),
    ("unsupported type", b"alcohol=1", "text/plain", 415, "only supports the content types"),
    ("latin-1", json.dumps(split()).encode(), "application/json; charset=latin-1", 415, "only supports UTF-8"),
    ("old protocol", json.dumps(split()).encode(), "application/json; format=pandas-split", 415, "format"),
]


@pytest.mark.parametrize("case", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_bad_raw_input(wine: Served, case: tuple[str, bytes, str, int, str]) -> None:
    _, body, content_type, status, words = case
    response = httpx.post(wine.url("/invocations"), content=body, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    assert words in response.json()["message"]


def _raw_http(port: int, head: bytes, body: bytes = b"", timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(head + body)
        chunks = []
        while True:
            try:
                chunk = conn.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_oversized_body_is_refused_from_content_length_before_it_is_read(wine: Served) -> None:
    # Announce 30 MB, send 100 bytes, and wait for the answer: it must come without the other 29.99 MB.
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 30000000\r\n\r\n"
    )
    answer = _raw_http(wine.port, head, b"{" * 100)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"connection: close" in rest.lower()
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body["message"] == "The body is 30000000 bytes; the limit is 65536 (MAX_BODY_BYTES). It was not read."


def test_oversized_chunked_body_is_cut_off_at_the_limit(wine: Served) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"dataframe_split": {"columns": [], "data": ['
        for _ in range(100):
            yield b"[" + b"1.0," * 300 + b"1.0],"

    response = httpx.post(wine.url("/invocations"), content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "exceeds the limit of 65536 bytes" in response.json()["message"]


V2_CASES: list[tuple[str, Any, int, str]] = [
    ("no inputs", {"inputs": []}, 400, "needs 'inputs'"),
    ("not an object", [1], 400, "must be a JSON object"),
    ("tensor without data", {"inputs": [{"name": "alcohol", "shape": [1], "datatype": "FP64"}]}, 400, "needs 'data'"),
    (
        "wrong datatype",
        {"inputs": [{"name": c, "shape": [1], "datatype": "BYTES", "data": ["x"]} for c in COLUMNS]},
        400,
        "Input 'alcohol' has datatype BYTES; column 'alcohol' is double",
    ),
    (
        "missing input",
        {"inputs": [{"name": c, "shape": [1], "datatype": "FP64", "data": [1.0]} for c in COLUMNS[:-1]]},
        400,
        "Missing input 'proline' (FP64)",
    ),
    (
        "shape does not match data",
        {"inputs": [{"name": "alcohol", "shape": [2], "datatype": "FP64", "data": [1.0]}]},
        400,
        "has 1 values but its shape [2] holds 2",
    ),
    (
        "matrix of the wrong width",
        {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}]},
        400,
        "does not have one column per signature column (13)",
    ),
    (
        "too many rows",
        {"inputs": [{"name": "x", "shape": [501, 13], "datatype": "FP64", "data": ROW * 501}]},
        413,
        "Too many rows: 501",
    ),
    (
        "bad value",
        {"inputs": [{"name": "x", "shape": [1, 13], "datatype": "FP64", "data": ["abc", *ROW[1:]]}]},
        400,
        "Column 'alcohol' expects double; row 0 has 'abc'",
    ),
]


@pytest.mark.parametrize(("case", "body", "status", "words"), V2_CASES, ids=[c[0] for c in V2_CASES])
def test_bad_v2_input(wine: Served, case: str, body: Any, status: int, words: str) -> None:
    response = wine.post_json("/v2/models/wine/infer", body)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


TYPED_ROW = {"n": 1, "i": 2, "b": True, "s": "a", "x": 0.5}
TYPED_CASES: list[tuple[str, str, Any, str]] = [
    ("fraction into long", "n", 1.5, "Column 'n' expects long (a whole number); row 0 has 1.5 (float)"),
    ("null into long", "n", None, "Column 'n' expects long, which has no null; row 0 has None (null)"),
    ("word into long", "n", "three", "Column 'n' expects long (a whole number); row 0 has 'three' (str)"),
    ("overflow into integer", "i", 2**40, "Column 'i' expects integer (between -2147483648 and 2147483647)"),
    ("number into boolean", "b", 2, "Column 'b' expects boolean (true or false); row 0 has 2 (int)"),
    ("number into string", "s", 5, "Column 's' expects string; row 0 has 5 (int)"),
    ("word into double", "x", "half", "Column 'x' expects double; row 0 has 'half' (str)"),
]


@pytest.mark.parametrize(("case", "column", "value", "words"), TYPED_CASES, ids=[c[0] for c in TYPED_CASES])
def test_bad_typed_value(session_servers: Any, case: str, column: str, value: Any, words: str) -> None:
    record = {**TYPED_ROW, column: value}
    response = session_servers.typed.post_json("/invocations", {"dataframe_records": [record]})
    assert response.status_code == 400, response.text
    assert words in response.json()["message"]
    assert response.json()["column"] == column


def _mutations(rng: random.Random) -> Iterator[bytes]:
    """Valid bodies broken in random ways: values swapped for other JSON types, keys dropped, bytes cut."""
    oddities: list[Any] = [None, "", "1e999", [], {}, True, -(2**70), 1e308, [[1]], {"a": []}, "\u2603"]
    for _ in range(150):
        body: Any = split(data=[list(ROW) for _ in range(rng.randint(1, 3))])
        action = rng.randrange(5)
        if action == 0:
            body["dataframe_split"]["data"][0][rng.randrange(13)] = rng.choice(oddities)
        elif action == 1:
            body["dataframe_split"]["columns"][rng.randrange(13)] = rng.choice(oddities)
        elif action == 2:
            body["dataframe_split"][rng.choice(["columns", "data"])] = rng.choice(oddities)
        elif action == 3:
            body = {rng.choice(["dataframe_records", "instances", "inputs", "params"]): rng.choice(oddities)}
        text = json.dumps(body).encode()
        if action == 4:
            text = text[: rng.randrange(len(text))]
        yield text


def test_no_mutation_of_a_valid_body_gets_a_5xx(wine: Served) -> None:
    rng = random.Random(20240601)
    statuses = set()
    with httpx.Client(base_url=wine.base_url) as client:
        for body in _mutations(rng):
            response = client.post("/invocations", content=body, headers={"content-type": "application/json"})
            assert response.status_code < 500, (body, response.text)
            statuses.add(response.status_code)
    assert 400 in statuses  # the mutations did break bodies
