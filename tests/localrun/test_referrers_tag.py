"""The referrers tag schema, for registries without the referrers API (OCI distribution spec v1.1.0, "Pushing
Manifests with Subject"): only a 404 starts an empty index; any other answer that is not an index is reported, never
overwritten."""

from __future__ import annotations

import json

import httpx
import pytest

from localrun.podman import OCI_INDEX, add_to_referrers_tag

SUBJECT = "sha256:" + "ab" * 32
NEW = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "cd" * 32, "size": 1}
OLD = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "ef" * 32, "size": 2}


def registry(answer: httpx.Response) -> tuple[httpx.Client, list[dict[str, object]]]:
    put: list[dict[str, object]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            put.append(json.loads(request.content))
            return httpx.Response(201)
        return answer

    return httpx.Client(transport=httpx.MockTransport(handle)), put


def test_no_index_yet_starts_one() -> None:
    client, put = registry(httpx.Response(404))
    add_to_referrers_tag(client, "http://r/v2/m", SUBJECT, NEW)
    assert put == [{"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [NEW]}]


def test_an_existing_index_keeps_what_it_lists() -> None:
    client, put = registry(httpx.Response(200, json={"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [OLD]}))
    add_to_referrers_tag(client, "http://r/v2/m", SUBJECT, NEW)
    assert put[0]["manifests"] == [OLD, NEW]


@pytest.mark.parametrize(
    "answer",
    [httpx.Response(500), httpx.Response(401), httpx.Response(200, json={"mediaType": "application/other"})],
    ids=["server error", "unauthorized", "not an index"],
)
def test_any_other_answer_is_reported_and_nothing_is_overwritten(answer: httpx.Response) -> None:
    client, put = registry(answer)
    with pytest.raises((httpx.HTTPError, RuntimeError)):
        add_to_referrers_tag(client, "http://r/v2/m", SUBJECT, NEW)
    assert put == []
