"""How long the server took to become ready, counted from the start of its process, and where the time went.

Shown by `/version` (`startup`) and the "model ready" log line: the interpreter's start and the server's own imports
(uvicorn, pydantic, numpy, ...), importing MLflow, loading the model, and the warm-up that proves the scoring path.
Standard library only.
"""

from __future__ import annotations

import os
import time


def process_started() -> float:
    """The `time.monotonic()` reading at which this process started (from /proc on Linux; else: now).

    /proc/self/stat's 22nd field is the start in clock ticks since boot, /proc/uptime the seconds since boot
    (proc(5)); their difference is the process's age, which also counts the interpreter's own start.
    """
    try:
        with open("/proc/self/stat") as stat_file:
            fields_after_name = stat_file.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as uptime_file:
            uptime = float(uptime_file.read().split()[0])
        started_after_boot = int(fields_after_name[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic()
    return time.monotonic() - max(0.0, uptime - started_after_boot)


def startup_report(
    *,
    process_start: float,
    app_created: float,
    mlflow_import_seconds: float,
    load_seconds: float,
    warmup_seconds: float,
    ready_at: float,
) -> dict[str, float]:
    """Seconds per phase, in the order they run, and from the process's start to ready."""
    return {
        "process_and_server_imports_seconds": round(max(0.0, app_created - process_start), 3),
        "mlflow_import_seconds": round(mlflow_import_seconds, 3),
        "model_load_seconds": round(load_seconds, 3),
        "warmup_seconds": round(warmup_seconds, 3),
        "ready_seconds": round(max(0.0, ready_at - process_start), 3),
    }
