"""A stand-in for GitHub's API on 127.0.0.1: it takes the listener's `repository_dispatch` calls and hands each
payload to the local release workflow, and keeps the pull requests the release commands open (`release.proposal`'s
`propose`: list, open, read and update one). Only what those callers use exists; every call checks the token.

The pull requests behave as GitHub documents them (https://docs.github.com/en/rest/pulls/pulls): `GET .../pulls`
lists the open ones unless `state` says `closed` or `all`, and `head` filters by `owner:branch`; `POST .../pulls`
answers 201 with the new pull request, or 422 when an open one from the same head exists (as the tests' stand-in,
tests/release/ghfake.py, answers); `PATCH .../pulls/<n>` changes title, body or state. Merging is what a reviewer
does in the web UI (`merge`): the pull request is closed with `merged_at` set.
"""

from __future__ import annotations

import json
import queue
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_REPO = r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
_DISPATCH = re.compile(_REPO + r"/dispatches$")
_PULLS = re.compile(_REPO + r"/pulls$")
_PULL = re.compile(_REPO + r"/pulls/(?P<number>[0-9]+)$")


@dataclass
class Dispatch:
    """One repository_dispatch as GitHub would have received it."""

    repository: str
    event_type: str
    client_payload: dict[str, Any]


@dataclass
class LocalCI:
    """The local GitHub API stand-in; `dispatches` yields each accepted dispatch in arrival order, `pulls` holds the
    pull requests by number."""

    token: str
    repository: str
    dispatches: queue.Queue[Dispatch] = field(default_factory=queue.Queue)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    received: int = 0
    server: ThreadingHTTPServer | None = None
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]

    def merge(self, number: int) -> dict[str, Any]:
        """A reviewer merges pull request `number` (the demo merges its branch in git itself)."""
        with self._lock:
            pull = self.pulls[number]
            if pull["state"] != "open":
                raise ValueError(f"pull request #{number} is {pull['state']}, not open")
            pull.update({"state": "closed", "merged_at": _now()})
            return dict(pull)

    # --- the API --------------------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, authorization: str | None, body: bytes) -> tuple[int, Any]:
        """One request: (status, JSON answer or None for an empty body)."""
        parts = urlsplit(raw_path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        routes = ((_DISPATCH, "dispatch"), (_PULLS, "pulls"), (_PULL, "pull"))
        found = next(((name, m) for pattern, name in routes if (m := pattern.match(parts.path))), None)
        if found is None:
            return 404, {"message": "Not Found"}
        if authorization != f"Bearer {self.token}":
            self.rejected.append("bad credentials")
            return 401, {"message": "Bad credentials"}
        name, match = found
        if f"{match['owner']}/{match['repo']}" != self.repository:
            return 404, {"message": "Not Found"}
        try:
            data = json.loads(body) if body else None
        except ValueError:
            return 400, {"message": "Problems parsing JSON"}
        with self._lock:
            if (method, name) == ("POST", "dispatch"):
                return self._dispatch(data)
            if (method, name) == ("GET", "pulls"):
                return 200, self._list_pulls(query)
            if (method, name) == ("POST", "pulls"):
                return self._create_pull(data)
            if name == "pull" and int(match["number"]) in self.pulls:
                pull = self.pulls[int(match["number"])]
                if method == "GET":
                    return 200, dict(pull)
                if method == "PATCH" and isinstance(data, dict):
                    pull.update({key: data[key] for key in ("title", "body", "state") if key in data})
                    return 200, dict(pull)
        return 404, {"message": "Not Found"}

    def _dispatch(self, data: Any) -> tuple[int, Any]:
        try:
            dispatch = Dispatch(self.repository, str(data["event_type"]), dict(data.get("client_payload") or {}))
        except (KeyError, TypeError, AttributeError):
            return 422, {"message": "Invalid request"}
        self.dispatches.put(dispatch)
        return 204, None

    def _list_pulls(self, query: dict[str, str]) -> list[dict[str, Any]]:
        state = query.get("state", "open")
        found = [
            dict(pull)
            for pull in self.pulls.values()
            if state in ("all", pull["state"]) and query.get("head", pull["head"]["label"]) == pull["head"]["label"]
        ]
        # One page holds them all here (the demo opens a handful), so no Link header is ever needed.
        return sorted(found, key=lambda pull: -int(pull["number"]))

    def _create_pull(self, data: Any) -> tuple[int, Any]:
        if not isinstance(data, dict) or not all(isinstance(data.get(key), str) for key in ("head", "base", "title")):
            return 422, {"message": "Validation Failed", "errors": [{"message": "head, base and title are required"}]}
        label = f"{self.owner}:{data['head']}"
        if any(pull["head"]["label"] == label and pull["state"] == "open" for pull in self.pulls.values()):
            errors = [{"message": f"A pull request already exists for {label}."}]
            return 422, {"message": "Validation Failed", "errors": errors}
        number = max(self.pulls, default=0) + 1
        self.pulls[number] = {
            "number": number,
            "title": data["title"],
            "body": str(data.get("body") or ""),
            "state": "open",
            "merged_at": None,
            "created_at": _now(),
            "head": {"ref": data["head"], "label": label},
            "base": {"ref": data["base"]},
            "html_url": f"{self.url}/{self.repository}/pull/{number}",
        }
        return 201, dict(self.pulls[number])

    # --- serving --------------------------------------------------------------------------------------------

    def start(self) -> str:
        ci = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                ci.received += 1
                length = int(self.headers.get("Content-Length") or 0)
                status, answer = ci.handle(
                    self.command, self.path, self.headers.get("Authorization"), self.rfile.read(length)
                )
                data = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, name="local-ci", daemon=True).start()
        host, port = self.server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        return self.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
