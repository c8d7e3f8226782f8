"""The post-deploy smoke test: post the model's own input example to a running server and check the answer.

The Kubernetes Job that gates `pulumi up` runs this from the same image, so it needs nothing but the model directory
the image already holds and the standard library.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path


class SmokeTestError(RuntimeError):
    """The server did not answer the input example with predictions; the message says what it answered."""


def input_example(model_dir: Path) -> bytes:
    """The scoring-protocol body MLflow saved with the model (`serving_input_example.json`)."""
    path = model_dir / "serving_input_example.json"
    if not path.is_file():
        raise SmokeTestError(f"{path} is missing: the model was logged without an input example")
    return path.read_bytes()


def smoke_test(url: str, body: bytes, *, attempts: int = 10, delay: float = 3.0, timeout: float = 10.0) -> str:
    """POSTs `body` to `url` until it answers 200 with `predictions`; returns the answer. A 4xx fails at once
    (the server understood and refused the example: retrying cannot help); anything else is retried."""
    if not url.startswith(("http://", "https://")):
        raise SmokeTestError(f"--url must be an http(s) URL, got {url!r}")
    last = "no attempt made"
    for attempt in range(1, attempts + 1):
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - checked above
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - checked above
                text: str = response.read().decode("utf-8", "replace")
            if "predictions" in json.loads(text):
                return text
            last = f"200 without predictions: {text[:200]}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read().decode('utf-8', 'replace')[:200]}"
            if 400 <= exc.code < 500:
                raise SmokeTestError(last) from None
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if attempt < attempts:
            time.sleep(delay)
    raise SmokeTestError(f"no good answer after {attempts} attempts; last: {last}")
