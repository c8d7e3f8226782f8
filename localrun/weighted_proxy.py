"""A weighted HTTP proxy (Debian's nginx) on 127.0.0.1 in front of a stable and a canary model server: the local
stand-in for the cluster's traffic router, which Argo Rollouts sets to each canary step's weight.

Each request goes to the canary with probability `canary_weight`/100, independently of every other request:
`split_clients` hashes `$request_id`, 16 random bytes per request (nginx.org/en/docs/http/ngx_http_core_module.html
#var_request_id), so a share of N requests is binomial. Every response says which side served it in `X-Canary-Side`
(also nginx's own 502 when that side is down). A weight change writes the new config, has `nginx -t` check it, and
only then reloads the running master (SIGHUP): old workers finish what they hold while new ones take new requests
(nginx.org/en/docs/control.html, "Changing Configuration"); a config nginx rejects leaves the old one serving.

nginx runs as a child process (`daemon off;`), with its prefix, pid file and temp paths under its own work directory,
so it needs no root; it has no telemetry. Request and response bodies are streamed, never spooled to disk.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from localrun.processes import LOOPBACK, ManagedProcess, ProcessFailedError, free_port

NGINX = Path("/usr/sbin/nginx")
SIDE_HEADER = "X-Canary-Side"
STABLE = "stable"
CANARY = "canary"
MISSING_NGINX = "install Debian's `nginx` (scripts/bootstrap.sh does, as root)"


class ProxyToolMissingError(RuntimeError):
    """nginx is not installed."""


class ProxyConfigError(RuntimeError):
    """`nginx -t` rejected a config; the one before it is still serving."""


def check_canary_weight(percent: object, argument: str = "canary_weight") -> int:
    """`percent` as the canary's share of requests, or ValueError naming `argument` and what it expects."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ValueError(f"{argument}: expected an int percentage from 0 to 100, got {percent!r}")
    return percent


def check_backend(argument: str, address: object) -> str:
    """`address` as `<IPv4 loopback>:<port>`, or ValueError naming `argument`.

    An IP literal, never a host name: nginx resolves upstream names when it loads a config, and a local stand-in
    must not depend on (or wait for) a resolver.
    """
    expected = f"{argument}: expected '<IPv4 loopback address>:<port>', e.g. '{LOOPBACK}:8081'"
    if not isinstance(address, str):
        raise ValueError(f"{expected}, got {address!r}")
    host, _, port = address.partition(":")
    try:
        loopback = ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{expected}, got {address!r}")
    return address


def _split(canary_weight: int) -> str:
    # split_clients refuses "0%", and "100%" leaves the hash 0xffffffff unmatched (its bound is exclusive); a lone
    # "*" bucket takes every hash (nginx/nginx src/http/modules/ngx_http_split_clients_module.c). Upstream
    # `server ... weight=` has no 0 either ("invalid parameter", src/http/ngx_http_upstream.c).
    if canary_weight == 0:
        return f"* {STABLE};"
    if canary_weight == 100:
        return f"* {CANARY};"
    return f"{canary_weight}% {CANARY}; * {STABLE};"


def render_config(*, workdir: Path, port: int, stable: str, canary: str, canary_weight: int) -> str:
    """The whole nginx.conf for these settings (checked here, so a typo never reaches nginx)."""
    check_canary_weight(canary_weight)
    check_backend("stable", stable)
    check_backend("canary", canary)
    temp = workdir / "temp"
    return f"""# Written by localrun/weighted_proxy.py on every weight change; edits here are overwritten.
daemon off;
worker_processes 1;
pid {workdir / "nginx.pid"};
error_log stderr notice;
events {{
    worker_connections 1024;
}}
http {{
    log_format canary '$remote_addr [$time_local] "$request" $status side=$canary_side '
                      'upstream=$upstream_addr request_time=$request_time';
    access_log {workdir / "access.log"} canary;
    client_body_temp_path {temp / "client_body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};

    upstream {STABLE} {{
        server {stable};
    }}
    upstream {CANARY} {{
        server {canary};
    }}
    split_clients "$request_id" $canary_side {{
        {_split(canary_weight)}
    }}

    server {{
        listen {LOOPBACK}:{port};
        # No client keep-alive: a reloading worker closes its idle keep-alive connections at once, and a request a
        # client sends on one just then is reset, not retried when it is a POST. nginx 1.27.4's
        # keepalive_min_timeout addresses this (nginx/nginx#456); Debian bookworm's nginx is 1.22.
        keepalive_timeout 0;
        location / {{
            # A variable naming a defined upstream selects that group, no resolver involved
            # (nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_pass).
            proxy_pass http://$canary_side;
            proxy_set_header Host $http_host;
            # Bodies stream through in both directions, so workers never write temp files (as root they run as
            # `nobody`, who may not enter the work directory); streaming a chunked request body needs HTTP/1.1.
            proxy_http_version 1.1;
            proxy_request_buffering off;
            proxy_buffering off;
            # The model server answers 413 to a body over its own limit; the router in front sets none (0: no check,
            # nginx.org/en/docs/http/ngx_http_core_module.html#client_max_body_size).
            client_max_body_size 0;
            proxy_hide_header {SIDE_HEADER};
            add_header {SIDE_HEADER} $canary_side always;
        }}
    }}
}}
"""


def _workers(master: int) -> set[int]:
    """The pids whose parent is `master` (nginx's worker processes)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # Fields after the command name, which is in parentheses and may itself contain spaces or parentheses.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == master:
            found.add(int(entry.name))
    return found


@dataclass
class WeightedProxy:
    """nginx on 127.0.0.1:`port` sending `canary_weight` percent of requests to `canary`, the rest to `stable`.

    Use it as a context manager, or call `start()` and `stop()`.
    """

    workdir: Path
    stable: str
    canary: str
    canary_weight: int = 0
    port: int = field(default_factory=free_port)
    nginx: Path = NGINX
    reload_timeout: float = 60.0
    _process: ManagedProcess | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        check_canary_weight(self.canary_weight)
        check_backend("stable", self.stable)
        check_backend("canary", self.canary)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "nginx.conf"

    def _argv(self, config: Path, *extra: str) -> list[str]:
        # -p: the prefix relative paths resolve against; -e: the log before the config is read
        # (nginx.org/en/docs/switches.html).
        return [str(self.nginx), "-p", f"{self.workdir}/", "-c", str(config), "-e", "stderr", *extra]

    def _check_installed(self) -> None:
        if not os.access(self.nginx, os.X_OK):
            raise ProxyToolMissingError(f"`{self.nginx}` not found or not executable: {MISSING_NGINX}")

    def _render(self, canary_weight: int) -> str:
        return render_config(
            workdir=self.workdir, port=self.port, stable=self.stable, canary=self.canary, canary_weight=canary_weight
        )

    def _test(self, text: str) -> None:
        """Write `text` as the live config once `nginx -t` accepts it; otherwise raise and keep the live one."""
        candidate = self.workdir / "nginx.conf.candidate"
        candidate.write_text(text)
        checked = subprocess.run(self._argv(candidate, "-t", "-q"), capture_output=True, text=True, check=False)
        if checked.returncode != 0:
            raise ProxyConfigError(
                f"nginx rejected the new config (left in {candidate}); the previous one is still serving:\n"
                f"{checked.stderr.strip()}"
            )
        candidate.replace(self.config_path)

    def start(self, timeout: float = 30.0) -> WeightedProxy:
        self._check_installed()
        (self.workdir / "temp").mkdir(parents=True, exist_ok=True)
        self._test(self._render(self.canary_weight))
        self._process = ManagedProcess(
            name="nginx",
            argv=self._argv(self.config_path),
            log_path=self.workdir / "nginx.log",
            ready_port=self.port,
        ).start(timeout)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()

    def __enter__(self) -> WeightedProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def set_canary_weight(self, percent: int) -> None:
        """Send `percent` (0..100) of new requests to the canary.

        Returns once every nginx worker left runs the new config: requests the old workers had accepted finish
        there (with the old split), none is dropped.
        """
        self.apply_config(self._render(check_canary_weight(percent, "percent")))
        self.canary_weight = percent

    def apply_config(self, text: str) -> None:
        """Check `text` with `nginx -t`, make it the live config and reload nginx onto it.

        Raises ProxyConfigError, with nginx's message, when nginx rejects it: the live config and the running
        workers are then untouched.
        """
        process = self._process
        if process is None or process.proc is None or not process.running:
            raise ProcessFailedError("nginx is not running: call start() first")
        self._test(text)
        master = process.proc.pid
        old = _workers(master)
        os.kill(master, signal.SIGHUP)
        self._wait_for_new_workers(process, master, old)

    def _wait_for_new_workers(self, process: ManagedProcess, master: int, old: set[int]) -> None:
        # The master starts new workers, then asks the old ones to stop accepting and exit once their requests are
        # done; when none of them is left, every request is split by the new config.
        deadline = time.monotonic() + self.reload_timeout
        while time.monotonic() < deadline:
            if not process.running:
                raise ProcessFailedError(f"nginx exited during a reload:\n{process.log_tail()}")
            workers = _workers(master)
            if workers and not workers & old:
                return
            time.sleep(0.02)
        still = sorted(_workers(master) & old)
        raise ProcessFailedError(
            f"nginx workers {still} still ran the old config {self.reload_timeout:.0f}s after a reload:\n"
            f"{process.log_tail()}"
        )
