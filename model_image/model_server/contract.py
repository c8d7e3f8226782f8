"""What the rest of the platform relies on about the model server and its image, in one place.

The Pulumi program (the Deployment's environment, port and user), the image's Dockerfile and the server's own
settings all take these names and numbers from here. Standard library only: the program imports this module
without the server's dependencies (MLflow, uvicorn, pydantic's settings), and `model_server/__init__.py` imports
nothing, so `import model_server.contract` loads exactly two small files.
"""

from __future__ import annotations

from typing import Final

PORT: Final = 8080
"""The port the server listens on in the image (`PORT`), and the container port the Deployment declares."""
RUN_AS_USER: Final = 10001
"""The uid and gid of the image's `app` user (`USER 10001:10001`); the pod runs as this user and group."""
MODEL_DIR: Final = "/opt/model"
"""Where the image holds the fetched model (`MODEL_DIR`)."""
APP_DIR: Final = "/opt/app"
"""Where the image holds the server's code (`PYTHONPATH`, the working directory)."""


class Routes:
    """The paths others call: the Rollout's probes, the smoke test and traffic Jobs, the metrics scrape, the
    demo. The server's route table is built from these (a test serves each one)."""

    INVOCATIONS: Final = "/invocations"
    HEALTH_READY: Final = "/health/ready"
    """200 once the model is loaded and warmed up: the startup and readiness probes."""
    HEALTH_LIVE: Final = "/health/live"
    """200 while the process serves at all: the liveness probe."""
    VERSION: Final = "/version"
    METRICS: Final = "/metrics"
    """Prometheus exposition: what the scrape job reads."""


class Env:
    """The environment variables the server reads: each is the alias of one field of `settings.Settings`.

    A test holds the two together both ways, so a name cannot change in one place only.
    """

    MODEL_DIR: Final = "MODEL_DIR"
    HOST: Final = "HOST"
    PORT: Final = "PORT"
    WORKERS: Final = "WORKERS"
    MODEL_NAME: Final = "MODEL_NAME"
    MODEL_VERSION: Final = "MODEL_VERSION"
    MODEL_RUN_ID: Final = "MODEL_RUN_ID"
    IMAGE_CODE_HASH: Final = "IMAGE_CODE_HASH"
    MAX_BODY_BYTES: Final = "MAX_BODY_BYTES"
    MAX_REQUEST_ROWS: Final = "MAX_REQUEST_ROWS"
    BATCH_MAX_ROWS: Final = "BATCH_MAX_ROWS"
    PREDICT_IN_THREAD: Final = "PREDICT_IN_THREAD"
    PAYLOAD_LOG_SAMPLE_RATE: Final = "PAYLOAD_LOG_SAMPLE_RATE"
    LOG_LEVEL: Final = "LOG_LEVEL"
    ACCESS_LOG: Final = "ACCESS_LOG"
    KEEPALIVE_TIMEOUT_SECONDS: Final = "KEEPALIVE_TIMEOUT_SECONDS"
    GRACEFUL_SHUTDOWN_SECONDS: Final = "GRACEFUL_SHUTDOWN_SECONDS"
    SHUTDOWN_DRAIN_SECONDS: Final = "SHUTDOWN_DRAIN_SECONDS"
    MAX_CONCURRENCY: Final = "MAX_CONCURRENCY"
    DRIFT_MONITORING: Final = "DRIFT_MONITORING"
    DRIFT_WINDOW_ROWS: Final = "DRIFT_WINDOW_ROWS"
    DRIFT_MIN_ROWS: Final = "DRIFT_MIN_ROWS"
    DRIFT_PSI_THRESHOLD: Final = "DRIFT_PSI_THRESHOLD"
    DRIFT_REFRESH_SECONDS: Final = "DRIFT_REFRESH_SECONDS"


class Commands:
    """The image's commands that the program runs in Jobs of the canary analysis (`python -m model_server <sub>`):
    the smoke test, the synthetic traffic and the judge. Their flags are the server's CLI's (`__main__.py`); a
    test parses every command the program writes with that parser."""

    SMOKE: Final = ("python", "-m", "model_server", "smoke")
    TRAFFIC: Final = ("python", "-m", "model_server", "traffic")
    JUDGE: Final = ("python", "-m", "model_server", "judge")


ONE_THREAD_ENV: Final[dict[str, str]] = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
"""Numeric libraries' thread pools held to one thread: one server process per pod, scaled by replicas."""

IMAGE_ENV: Final[dict[str, str]] = {
    "PYTHONPATH": APP_DIR,
    Env.MODEL_DIR: MODEL_DIR,
    Env.PORT: str(PORT),
    **ONE_THREAD_ENV,
    "TMPDIR": "/tmp",  # noqa: S108 (the pod's per-pod emptyDir; the root filesystem is read-only)
    "HOME": "/tmp",  # noqa: S108
    "MPLCONFIGDIR": "/tmp/matplotlib",  # noqa: S108
}
"""The fixed part of the runtime image's `ENV` (the Dockerfile states it literally; a test compares the two)."""
