"""The model's life in one server process: loading, ready or failed, drift monitoring, draining, shutdown.

The model loads in a background thread so that liveness answers at once and readiness turns true only after the
warm-up prediction succeeded; the outcome is handed back to the event loop, which alone changes the state.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from model_server.batching import MicroBatcher
from model_server.drift import DriftMonitor, DriftSettings
from model_server.drift_reference import REFERENCE_FILE
from model_server.loading import LoadedModel, ModelIdentity, load_model, resolve_identity
from model_server.logs import EVENTS
from model_server.metrics import Metrics
from model_server.settings import Settings
from model_server.startup import process_started, startup_report
from model_server.transport import HttpError


class Lifecycle:
    """Owns the served model's state: its identity, the loaded model or the load error, the batcher, the drift
    monitor and its refresh task, the startup report, draining and readiness. Started and stopped by the ASGI
    lifespan (it is the transport's `Lifespan`); the protocols and the status routes read it.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        loader: Callable[[Settings], LoadedModel] = load_model,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        # Built with the server, whose imports are done: what remains before ready is MLflow, the model, the warm-up.
        self._process_start, self._created = process_started(), time.monotonic()
        self.startup: dict[str, float] = {}
        self.identity: ModelIdentity = resolve_identity(settings)
        self.loaded: LoadedModel | None = None
        self.load_error: str | None = None
        self.draining = False
        self.batcher: MicroBatcher | None = None
        self.drift: DriftMonitor | None = None
        self._drift_off_reason = "the model is still loading"
        self._drift_task: asyncio.Task[None] | None = None
        self._loader = loader
        self._on_fatal = on_fatal
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------------------------------------ lifespan

    def start(self) -> None:
        """Start loading the model in the background (on the lifespan's startup, inside the event loop)."""
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._load_in_background, name="model-loader", daemon=True).start()

    async def stop(self) -> None:
        """Stop the drift refresh and the batcher (on the lifespan's shutdown)."""
        if self._drift_task is not None:
            self._drift_task.cancel()
        if self.batcher is not None:
            await self.batcher.stop()

    # ------------------------------------------------------------------------------------------------ state

    def readiness(self) -> tuple[bool, str]:
        if self.load_error is not None:
            return False, "failed"
        if self.loaded is None:
            return False, "loading"
        if self.draining:
            return False, "draining"
        return True, "ready"

    def require_model(self) -> tuple[LoadedModel, MicroBatcher]:
        """The loaded model and its batcher, or a 503 while it loads or after it failed to."""
        if self.loaded is None or self.batcher is None:
            state = "failed to load" if self.load_error else "still loading"
            raise HttpError(503, f"The model is {state}; try again later.", "TEMPORARILY_UNAVAILABLE")
        return self.loaded, self.batcher

    def batching_description(self) -> str:
        if self.loaded is None or not self.loaded.mergeable or self.settings.batch_max_rows <= 1:
            return "off"
        return f"greedy, up to {self.settings.batch_max_rows} rows"

    def drift_description(self) -> dict[str, Any]:
        if self.drift is None:
            return {"monitoring": "off", "reason": self._drift_off_reason}
        return self.drift.describe()

    # ------------------------------------------------------------------------------------------------ loading

    def _load_in_background(self) -> None:
        assert self._loop is not None
        EVENTS.info(
            "loading model", extra={"fields": {"model_dir": str(self.settings.model_dir), **self.identity.as_dict()}}
        )
        try:
            loaded = self._loader(self.settings)
        except Exception as exc:
            EVENTS.exception("model failed to load or warm up")
            self._loop.call_soon_threadsafe(self._load_failed, f"{type(exc).__name__}: {exc}")
            return
        self._loop.call_soon_threadsafe(self._load_succeeded, loaded)

    def _load_failed(self, error: str) -> None:
        self.load_error = error
        self._drift_off_reason = "the model failed to load"
        if self._on_fatal is not None:
            self._on_fatal(error)

    def _start_drift(self, loaded: LoadedModel) -> DriftMonitor | None:
        """The drift monitor, or None with the reason in `_drift_off_reason`."""
        if not self.settings.drift_monitoring:
            self._drift_off_reason = "DRIFT_MONITORING is false"
        elif loaded.drift_reference is None:
            self._drift_off_reason = f"the model has no drift reference ({REFERENCE_FILE})"
        elif loaded.schema is None:
            self._drift_off_reason = "MLflow parses this model's inputs (no column signature), so the rows are not seen"
        else:
            s = self.settings
            settings = DriftSettings(s.drift_window_rows, s.drift_min_rows, s.drift_psi_threshold)
            try:
                monitor = DriftMonitor(loaded.drift_reference, loaded.schema, settings, self.metrics)
            except Exception as exc:  # the model was checked at load; never let monitoring stop it from serving
                EVENTS.exception("drift monitoring could not start")
                self._drift_off_reason = f"drift monitoring could not start: {type(exc).__name__}: {exc}"
                return None
            self._drift_task = asyncio.get_running_loop().create_task(self._refresh_drift(monitor), name="drift")
            return monitor
        EVENTS.info("drift monitoring is off: %s", self._drift_off_reason)
        return None

    async def _refresh_drift(self, monitor: DriftMonitor) -> None:
        # Scrapes refresh the answering worker; this keeps every worker's gauges current when WORKERS > 1.
        while True:
            await asyncio.sleep(self.settings.drift_refresh_seconds)
            monitor.refresh()

    def _load_succeeded(self, loaded: LoadedModel) -> None:
        self.drift = self._start_drift(loaded)
        self.batcher = MicroBatcher(
            loaded.scorer,
            max_rows=self.settings.batch_max_rows,
            mergeable=loaded.mergeable,
            in_thread=self.settings.predict_in_thread,
            observe=self.metrics.observe_batch,
            on_scored=self.drift.observe if self.drift is not None else None,
        )
        self.batcher.start()
        self.identity = loaded.identity
        self.metrics.load_seconds.set(loaded.load_seconds)
        self.metrics.warmup_seconds.set(loaded.warmup_seconds)
        ident = loaded.identity
        self.metrics.info.labels(
            model_name=ident.name,
            model_version=ident.version or "",
            model_run_id=ident.run_id or "",
            image_code_hash=ident.image_code_hash or "",
            scoring_path=loaded.scorer.path.value,
        ).set(1)
        self.loaded = loaded
        self.startup = startup_report(
            process_start=self._process_start,
            app_created=self._created,
            mlflow_import_seconds=loaded.mlflow_import_seconds,
            load_seconds=loaded.load_seconds,
            warmup_seconds=loaded.warmup_seconds,
            ready_at=time.monotonic(),
        )
        self.metrics.ready.set(1)
        EVENTS.info(
            "model ready",
            extra={
                "fields": {
                    **ident.as_dict(),
                    "flavor": loaded.flavor,
                    "scoring_path": loaded.scorer.path.value,
                    "batching": self.batching_description(),
                    "drift_monitoring": self.drift_description()["monitoring"],
                    "load_seconds": round(loaded.load_seconds, 3),
                    "warmup_seconds": round(loaded.warmup_seconds, 3),
                    "startup": self.startup,
                }
            },
        )
