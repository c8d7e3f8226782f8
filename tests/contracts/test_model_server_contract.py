"""The program ↔ model server boundary: the names, port and user the program and the image use are the ones the
server reads and the image declares, all taken from `model_server/contract.py`."""

from __future__ import annotations

from typing import Any

from model_server import contract
from model_server.settings import Settings, load_settings
from offline.preview import StackRun
from tests.model_image.test_dockerfile import final_stage, instructions

DEPLOYMENT = "kubernetes:argoproj.io/v1alpha1:Rollout"  # the model's pods: an Argo Rollout


def contract_env_names() -> set[str]:
    return {value for key, value in vars(contract.Env).items() if key.isupper()}


def server_container(run: StackRun) -> dict[str, Any]:
    containers: list[dict[str, Any]] = run.run.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]["containers"]
    (server,) = (c for c in containers if c["name"] == "server")
    return server


def test_the_contract_names_exactly_the_variables_the_server_settings_read() -> None:
    assert contract_env_names() == set(Settings.env_names().values())


def test_every_variable_the_program_sets_on_the_pod_is_one_the_server_reads(staging: StackRun) -> None:
    env = {item["name"]: item["value"] for item in server_container(staging)["env"]}
    server_reads = set(Settings.env_names().values())
    assert set(env) - server_reads <= set(contract.ONE_THREAD_ENV)  # read by numpy/BLAS, not by the server
    # What the stack decides must reach the server: the model it serves and its row limit.
    assert {contract.Env.MODEL_NAME, contract.Env.MODEL_VERSION, contract.Env.MAX_REQUEST_ROWS} <= set(env)
    assert env[contract.Env.MAX_REQUEST_ROWS] == str(staging.settings["serving"]["maxRows"])


def test_the_pod_runs_as_the_image_user_on_the_image_port(staging: StackRun) -> None:
    server = server_container(staging)
    assert [p["containerPort"] for p in server["ports"]] == [contract.PORT]
    security = server["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (contract.RUN_AS_USER, contract.RUN_AS_USER)


def test_the_server_defaults_are_the_image_layout() -> None:
    defaults = load_settings({})
    assert (defaults.port, str(defaults.model_dir)) == (contract.PORT, contract.MODEL_DIR)


def test_the_dockerfile_declares_the_contract_user_port_and_environment() -> None:
    final = final_stage()
    uid = contract.RUN_AS_USER
    assert [args for keyword, args in final if keyword == "USER"] == [f"{uid}:{uid}"]
    assert ("EXPOSE", str(contract.PORT)) in final
    user_setup = " ".join(args for keyword, args in final if keyword == "RUN" and "useradd" in args)
    assert f"groupadd --system --gid {uid} app" in user_setup
    assert f"useradd --system --uid {uid} --gid {uid}" in user_setup
    env = dict(
        item.split("=", 1) for keyword, args in final if keyword == "ENV" for item in args.split(" ") if "=" in item
    )
    assert {name: env.get(name) for name in contract.IMAGE_ENV} == contract.IMAGE_ENV
    assert ("WORKDIR", contract.APP_DIR) in final
    fetch = next(args for keyword, args in instructions() if keyword == "RUN" and "model_server fetch" in args)
    assert f"--dest {contract.MODEL_DIR}" in fetch


SMOKE_TEMPLATE = "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate"
SCRAPE_CONFIG = "kubernetes:core/v1:ConfigMap"


def answers(method: str, path: str) -> int:
    """The status the server answers `method path` with while its model is still loading (none is ever loaded)."""
    import asyncio

    import httpx

    from model_server.app import ModelServer
    from model_server.settings import load_settings

    async def call() -> int:
        app = ModelServer(load_settings({contract.Env.MODEL_DIR: "/nonexistent"}))
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # dict scope: ASGI's own shape
        async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
            response = await client.request(method, path, content=b"{}", headers={"content-type": "application/json"})
            return response.status_code

    return asyncio.run(call())


def test_the_server_answers_every_route_of_the_contract() -> None:
    # While loading: alive, not ready, no predictions yet; never "no such endpoint".
    assert answers("GET", contract.Routes.HEALTH_LIVE) == 200
    assert answers("GET", contract.Routes.HEALTH_READY) == 503
    assert answers("GET", contract.Routes.VERSION) == 200
    assert answers("GET", contract.Routes.METRICS) == 200
    assert answers("POST", contract.Routes.INVOCATIONS) == 503
    assert answers("GET", "/no-such-route") == 404, "a route the server lacks is told apart"


def test_the_probes_smoke_test_and_scrape_call_the_contract_routes(staging: StackRun) -> None:
    server = server_container(staging)
    probes = {kind: server[kind]["httpGet"]["path"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes == {
        "startupProbe": contract.Routes.HEALTH_READY,
        "readinessProbe": contract.Routes.HEALTH_READY,
        "livenessProbe": contract.Routes.HEALTH_LIVE,
    }
    smoke = next(r for r in staging.run.all(SMOKE_TEMPLATE) if r.name == "model-smoke-template")
    (metric,) = smoke.inputs["spec"]["metrics"]
    (job_container,) = metric["provider"]["job"]["spec"]["template"]["spec"]["containers"]
    urls = [arg for arg in job_container["command"] if str(arg).startswith("http")]
    assert len(urls) == 1
    assert urls[0].endswith(f".svc.cluster.local{contract.Routes.INVOCATIONS}")
    scrape = next(r for r in staging.run.all(SCRAPE_CONFIG) if r.name == "model-metrics-config")
    assert f"metrics_path: {contract.Routes.METRICS}\n" in scrape.inputs["data"]["prometheus-config"]


def job_commands(run: StackRun) -> list[list[str]]:
    """The command of every Job the canary analysis runs in the model image (smoke test, traffic, each check)."""
    return [
        container["command"]
        for template in run.run.all(SMOKE_TEMPLATE)
        for metric in template.inputs["spec"]["metrics"]
        if "job" in metric["provider"]
        for container in metric["provider"]["job"]["spec"]["template"]["spec"]["containers"]
    ]


def test_every_command_the_analysis_runs_is_one_the_server_cli_takes(staging: StackRun) -> None:
    from model_server.__main__ import _parser

    commands = job_commands(staging)
    prefixes = {contract.Commands.SMOKE, contract.Commands.TRAFFIC, contract.Commands.JUDGE}
    # Staging sends synthetic traffic: all three kinds run there.
    assert {tuple(command[:4]) for command in commands} == prefixes
    for command in commands:
        parsed = _parser().parse_args(command[3:])  # argparse exits on a flag or subcommand it does not know
        assert parsed.command == command[3]
