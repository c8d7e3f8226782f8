"""Synthetic scoring traffic for a canary that real traffic does not reach enough to be judged.

The release runs this from the new image, as a Job of its analysis, against the canary Service only: the model's
own input example at a steady rate for the length of the canary, so the checks (error ratio, latency) measure the
new version on requests it really served. Standard library only; the verdict is the checks', not this command's:
it fails only when the canary never answered at all.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class TrafficResult:
    """What was sent and how the server answered: status code (0: no answer) to count."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def answered(self) -> int:
        return self.sent - self.statuses[0]


def send_traffic(url: str, body: bytes, *, rps: float, seconds: float, timeout: float = 10.0) -> TrafficResult:
    """POSTs `body` to `url` `rps` times a second for `seconds`, one request at a time on a fixed schedule (a slow
    answer delays the next request, it never piles requests up)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--url must be an http(s) URL, got {url!r}")
    if rps <= 0 or seconds <= 0:
        raise ValueError(f"--rps and --seconds must be positive (got {rps}, {seconds})")
    result = TrafficResult()
    interval = 1.0 / rps
    start = time.monotonic()
    next_at = start
    while next_at < start + seconds:
        time.sleep(max(0.0, next_at - time.monotonic()))
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        result.sent += 1
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - checked above
                response.read()
                result.statuses[response.status] += 1
        except urllib.error.HTTPError as exc:
            exc.read()
            result.statuses[exc.code] += 1
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            result.statuses[0] += 1
        next_at += interval
    return result
