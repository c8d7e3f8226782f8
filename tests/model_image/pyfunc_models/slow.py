"""A pyfunc model that takes its time to load and to predict (MLflow "models from code" file).

SLOW_LOAD_GATE (a file path) holds the load until the file exists; SLOW_PREDICT_SECONDS delays every predict.
Both are read from the environment of the serving process.
"""

# mypy: disable-error-code="no-untyped-def"
from __future__ import annotations

import os
import time
from pathlib import Path

from mlflow.models import set_model
from mlflow.pyfunc.model import PythonModel


class Slow(PythonModel):
    def load_context(self, context):
        gate = os.environ.get("SLOW_LOAD_GATE")
        # The gate is touched by test_lifecycle, after every test file before it has run (minutes on a busy machine);
        # the deadline only keeps a server whose test was deselected from waiting forever.
        deadline = time.monotonic() + 900
        while gate and not Path(gate).exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would infer a signature from them
        time.sleep(float(os.environ.get("SLOW_PREDICT_SECONDS", "0")))
        return model_input["x"].to_numpy() * 2


set_model(Slow())
