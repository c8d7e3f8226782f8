"""The local weighted proxy: the real Debian nginx on 127.0.0.1 in front of two real HTTP servers (stable, canary)
that answer with their own name, so every response shows both the side the proxy reports and the side that served.
"""

from __future__ import annotations

import collections
import math
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from localrun.processes import LOOPBACK, ManagedProcess, free_port
from localrun.weighted_proxy import (
    CANARY,
    NGINX,
    SIDE_HEADER,
    STABLE,
    ProxyConfigError,
    ProxyToolMissingError,
    WeightedProxy,
    render_config,
)

needs_nginx = pytest.mark.skipif(not NGINX.exists(), reason="Debian's nginx (scripts/bootstrap.sh installs it)")


def backend(name: str, workdir: Path) -> ManagedProcess:
    port = free_port()
    return ManagedProcess(
        name=name,
        argv=[sys.executable, "-m", "tests.localrun.named_backend", name, str(port)],
        log_path=workdir / f"{name}.log",
        ready_url=f"http://{LOOPBACK}:{port}/",
    )


def address(process: ManagedProcess) -> str:
    assert process.ready_url is not None
    return process.ready_url.removeprefix("http://").rstrip("/")


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    workdir = tmp_path_factory.mktemp("backends")
    stable, canary = backend(STABLE, workdir).start(), backend(CANARY, workdir).start()
    try:
        yield address(stable), address(canary)
    finally:
        stable.stop()
        canary.stop()


@pytest.fixture
def proxy(backends: tuple[str, str], tmp_path: Path) -> Iterator[WeightedProxy]:
    stable, canary = backends
    with WeightedProxy(tmp_path / "proxy", stable=stable, canary=canary) as running:
        yield running


def side(response: httpx.Response) -> str:
    """The side the proxy reports, checked against the backend that answered."""
    assert response.status_code == 200, response.text
    reported = response.headers.get_list(SIDE_HEADER)
    assert len(reported) == 1, reported
    assert response.text.split()[0] == reported[0], "the header names the side that served"
    return reported[0]


def count_sides(proxy: WeightedProxy, requests: int) -> collections.Counter[str]:
    with httpx.Client(base_url=proxy.url) as client:
        return collections.Counter(side(client.get("/invocations")) for _ in range(requests))


# --- real nginx -------------------------------------------------------------------------------------------------


@needs_nginx
@pytest.mark.integration
def test_weight_0_sends_every_request_to_stable(proxy: WeightedProxy) -> None:
    assert count_sides(proxy, 200) == {STABLE: 200}


@needs_nginx
@pytest.mark.integration
def test_weight_100_sends_every_request_to_canary(proxy: WeightedProxy) -> None:
    proxy.set_canary_weight(100)
    assert count_sides(proxy, 200) == {CANARY: 200}


@needs_nginx
@pytest.mark.integration
@pytest.mark.slow
def test_weight_10_sends_a_binomial_tenth_to_the_canary(proxy: WeightedProxy) -> None:
    proxy.set_canary_weight(10)
    n, p = 1000, 0.10
    counts = count_sides(proxy, n)
    # Each request is an independent draw (split_clients over a random $request_id): canary ~ Binomial(1000, 0.1),
    # mean 100, sd sqrt(1000*0.1*0.9) = 9.49; +-5 sd (53..147) fails a correct proxy with probability < 1e-6.
    tolerance = 5 * math.sqrt(n * p * (1 - p))
    print(f"\nweight 10%: canary served {counts[CANARY]} of {n} ({counts[CANARY] / n:.1%}); accepted 53..147")
    assert counts[STABLE] + counts[CANARY] == n
    assert abs(counts[CANARY] - n * p) <= tolerance


@needs_nginx
@pytest.mark.integration
@pytest.mark.slow
def test_a_reload_under_continuous_load_loses_no_request(proxy: WeightedProxy) -> None:
    failures: list[str] = []
    served: collections.Counter[str] = collections.Counter()
    stop = threading.Event()

    def load(keep_alive: bool) -> None:
        # Clients that reuse their connections (as load generators do) and one that opens one per request.
        with httpx.Client(base_url=proxy.url) as client:
            while not stop.is_set():
                try:
                    if keep_alive:  # scoring requests are POSTs, which no client retries on its own
                        response = client.post("/invocations", content=b'{"inputs": [[1.0]]}')
                    else:
                        response = httpx.get(f"{proxy.url}/")
                    served[side(response)] += 1
                except (httpx.HTTPError, AssertionError) as error:
                    failures.append(
                        f"{'keep-alive' if keep_alive else 'new connection'}: {type(error).__name__}: {error}"
                    )

    threads = [threading.Thread(target=load, args=(keep_alive,)) for keep_alive in (True, True, True, False)]
    for thread in threads:
        thread.start()
    reloads: list[float] = []
    try:
        for weight in [10, 50, 90, 100, 0] * 4:
            before = sum(served.values())
            while sum(served.values()) < before + 20:  # requests in flight around every reload
                time.sleep(0.005)
            started = time.monotonic()
            proxy.set_canary_weight(weight)
            reloads.append(time.monotonic() - started)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    print(
        f"\n{len(reloads)} reloads under load: {sum(served.values())} requests ({dict(served)}), "
        f"{len(failures)} failed; reload (SIGHUP until no old worker is left) "
        f"median {sorted(reloads)[len(reloads) // 2] * 1000:.0f} ms, max {max(reloads) * 1000:.0f} ms"
    )
    assert failures == []
    assert served[STABLE] > 0
    assert served[CANARY] > 0


@needs_nginx
@pytest.mark.integration
def test_a_config_nginx_rejects_leaves_the_old_one_serving(proxy: WeightedProxy, tmp_path: Path) -> None:
    proxy.set_canary_weight(100)
    live = proxy.config_path.read_text()
    broken = live.replace("proxy_pass http://$canary_side;", "proxy_pass http://$canary_side")

    with pytest.raises(ProxyConfigError, match=r"the previous one is still serving:\n.*emerg"):
        proxy.apply_config(broken)

    assert proxy.config_path.read_text() == live
    assert count_sides(proxy, 50) == {CANARY: 50}
    proxy.set_canary_weight(0)  # and the next good config still applies
    assert count_sides(proxy, 50) == {STABLE: 50}


@needs_nginx
@pytest.mark.integration
def test_a_large_request_body_reaches_the_backend_whole(proxy: WeightedProxy) -> None:
    # Streamed, not spooled: as root nginx's workers run as `nobody`, who cannot write under a private work dir.
    body = b"x" * (4 * 1024 * 1024)
    response = httpx.post(f"{proxy.url}/invocations", content=body, timeout=30)
    assert response.text == f"{side(response)} {len(body)}"


@needs_nginx
@pytest.mark.integration
def test_a_side_that_is_down_answers_502_naming_that_side(backends: tuple[str, str], tmp_path: Path) -> None:
    stable, _ = backends
    down = f"{LOOPBACK}:{free_port()}"
    with WeightedProxy(tmp_path / "proxy", stable=stable, canary=down, canary_weight=100) as proxy:
        response = httpx.get(f"{proxy.url}/")
    assert response.status_code == 502
    assert response.headers[SIDE_HEADER] == CANARY


def listening_addresses(port: int) -> list[str]:
    """The local addresses (hex, as the kernel prints them) of every TCP socket listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN (proc(5))
                found.append(address)
    return found


@needs_nginx
@pytest.mark.integration
def test_nginx_listens_on_the_loopback_address_only(proxy: WeightedProxy) -> None:
    assert listening_addresses(proxy.port) == ["0100007F"]  # 127.0.0.1, little-endian; nothing on IPv6


# --- without nginx ----------------------------------------------------------------------------------------------


def test_without_nginx_installed_start_says_how_to_install_it(tmp_path: Path) -> None:
    proxy = WeightedProxy(tmp_path, stable=f"{LOOPBACK}:8081", canary=f"{LOOPBACK}:8082", nginx=tmp_path / "nginx")
    with pytest.raises(ProxyToolMissingError, match=r"nginx` not found or not executable: install Debian's `nginx`"):
        proxy.start()


@pytest.mark.parametrize("weight", [-1, 101, 10.5, "10", True, None])
def test_a_weight_outside_0_to_100_or_not_an_int_is_refused(weight: object, tmp_path: Path) -> None:
    expected = r": expected an int percentage from 0 to 100, got "
    with pytest.raises(ValueError, match=f"^canary_weight{expected}"):
        WeightedProxy(tmp_path, stable=f"{LOOPBACK}:8081", canary=f"{LOOPBACK}:8082", canary_weight=weight)  # type: ignore[arg-type]
    proxy = WeightedProxy(tmp_path, stable=f"{LOOPBACK}:8081", canary=f"{LOOPBACK}:8082")
    with pytest.raises(ValueError, match=f"^percent{expected}"):
        proxy.set_canary_weight(weight)  # type: ignore[arg-type]
    assert proxy.canary_weight == 0


@pytest.mark.parametrize("bad", ["localhost:8081", "10.0.0.5:8081", f"{LOOPBACK}", f"{LOOPBACK}:0", 8081, "[::1]:80"])
def test_a_backend_that_is_not_a_loopback_ip_and_port_is_refused(bad: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"canary: expected '<IPv4 loopback address>:<port>'"):
        WeightedProxy(tmp_path, stable=f"{LOOPBACK}:8081", canary=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("weight", "split"), [(0, "* stable;"), (37, "37% canary; * stable;"), (100, "* canary;")])
def test_the_split_never_uses_a_bucket_nginx_refuses_or_leaves_a_hash_unmatched(
    weight: int, split: str, tmp_path: Path
) -> None:
    text = render_config(
        workdir=tmp_path, port=8080, stable=f"{LOOPBACK}:8081", canary=f"{LOOPBACK}:8082", canary_weight=weight
    )
    assert f'split_clients "$request_id" $canary_side {{\n        {split}\n    }}' in text
    assert [line.strip() for line in text.splitlines() if line.strip().startswith("listen")] == [
        f"listen {LOOPBACK}:8080;"
    ]
