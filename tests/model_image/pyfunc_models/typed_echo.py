"""A pyfunc model over columns of every simple type; answers a DataFrame (MLflow "models from code" file)."""

# mypy: disable-error-code="no-untyped-def"
from __future__ import annotations

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc.model import PythonModel


class TypedEcho(PythonModel):
    def predict(self, context, model_input, params=None):  # no type hints: MLflow would infer a signature from them
        return pd.DataFrame(
            {
                "total": (model_input["n"].astype("int64") + model_input["i"].astype("int64")).to_numpy(),
                "flag": model_input["b"].astype(bool).to_numpy(),
                "label": [f"{s}!" for s in model_input["s"]],
                "double_x": (model_input["x"] * 2).to_numpy(),
            }
        )


set_model(TypedEcho())
