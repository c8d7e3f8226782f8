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
