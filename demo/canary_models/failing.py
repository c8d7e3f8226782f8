"""A pyfunc model that fails a share of its predictions with an internal error (MLflow "models from code" file): the
deliberately bad version a canary analysis must stop.

It predicts class 0 for every row. Once the file named by FAILING_ARMED_FILE exists, each predict call raises an
MlflowException with INTERNAL_ERROR (the model server answers 500) with probability FAILING_SHARE; before that it
never fails, so the server's warm-up on the input example passes and the server becomes ready.
"""

# mypy: disable-error-code="no-untyped-def"
from __future__ import annotations

import os
import random
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.models import set_model
from mlflow.pyfunc.model import PythonModel


class Failing(PythonModel):
    def predict(self, context, model_input, params=None):  # no type hints: MLflow would infer a signature from them
        armed = os.environ.get("FAILING_ARMED_FILE")
        share = float(os.environ.get("FAILING_SHARE", "0.5"))
        # Which requests fail need not be unpredictable to anyone: not a secret.
        if armed and Path(armed).exists() and random.random() < share:  # noqa: S311
            # Its default error code is INTERNAL_ERROR, which MLflow maps to HTTP 500 (mlflow/exceptions.py).
            raise MlflowException("the bad version failed on purpose")
        return [0] * len(model_input)


set_model(Failing())
