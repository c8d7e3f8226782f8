"""The serving venv is mlflow-skinny plus the model's libraries: the model's `mlflow==` line cannot bring back the full
package, and a model that relied on what full mlflow brings says so, by name, when it fails to load."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import textwrap
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from model_server import model_requirements as mr
from model_server.loading import ModelLoadError, load_model
from model_server.settings import load_settings

MODEL_IMAGE = Path(__file__).resolve().parents[2] / "model_image"
SCRIPT = MODEL_IMAGE / "model_server" / "model_requirements.py"


def locked(path: Path) -> dict[str, str]:
    """{canonical name: version} of a lock file's pins (one per name; markers dropped)."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)", line)
        if match:
            found[mr.canonical(match[1])] = match[2]
    return found


def test_the_models_mlflow_pin_becomes_the_servers_mlflow_skinny_and_nothing_else_changes() -> None:
    lines = [
        "mlflow==3.16.0",
        "cloudpickle==3.1.2",
        "MLflow[extras]>=2.0  # written by hand",
        "mlflow_skinny==3.1.0",
        "mlflow-tracing==3.16.0",
        "mlflowx==1.0",
        "-c constraints.txt",
        "# a comment",
        "scikit-learn==1.9.1",
    ]
    kept, notes = mr.rewrite(lines, "3.17.2")
    assert kept == [
        "mlflow-skinny==3.17.2",
        "cloudpickle==3.1.2",
        "mlflow-skinny[extras]==3.17.2",
        "mlflow-skinny==3.17.2",
        "mlflow-tracing==3.16.0",
        "mlflowx==1.0",
        "-c constraints.txt",
        "# a comment",
        "scikit-learn==1.9.1",
    ]
    assert len(notes) == 3
    assert "'mlflow==3.16.0' -> 'mlflow-skinny==3.17.2'" in notes[0]


def test_the_script_rewrites_the_file_and_pins_skinny_to_the_installed_version(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("mlflow==3.10.0\nnumpy==2.4.6\n")
    argv = [sys.executable, str(SCRIPT), "rewrite", str(tmp_path / "requirements.txt")]
    proc = subprocess.run(
        [*argv, "--out", str(tmp_path / "out.txt"), "--constraints", str(tmp_path / "c.txt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    skinny = importlib.metadata.version("mlflow-skinny")
    assert (tmp_path / "out.txt").read_text() == f"mlflow-skinny=={skinny}\nnumpy==2.4.6\n"
    assert (tmp_path / "c.txt").read_text() == f"mlflow-skinny=={skinny}\n"
    assert "'mlflow==3.10.0' -> " in proc.stderr


class _Dist:
    """The two things `verify` reads from an installed distribution."""

    def __init__(self, name: str, version: str, requires: list[str] | None = None) -> None:
        self.metadata = Message()
        self.metadata["Name"] = name
        self.version = version
        self.requires = requires


def test_verify_names_the_library_that_brought_the_full_mlflow_package_back() -> None:
    skinny_only: list[Any] = [_Dist("mlflow-skinny", "3.17.2"), _Dist("scikit-learn", "1.9.1", ["numpy>=1.22"])]
    mr.verify(skinny_only)
    with_full: list[Any] = [
        *skinny_only,
        _Dist("mlflow", "3.17.2", ["mlflow-skinny==3.17.2"]),
        _Dist("some-flavor", "0.3", ["mlflow>=2.0", "boto3; extra == 'aws'"]),
    ]
    with pytest.raises(mr.RequirementsError, match=r"brought in by some-flavor 0.3 \(requires mlflow>=2.0\)"):
        mr.verify(with_full)


def test_the_servers_lock_has_mlflow_skinny_and_none_of_full_mlflows_server_libraries() -> None:
    pins = locked(MODEL_IMAGE / "requirements.txt")
    assert pins["mlflow-skinny"] == locked(Path(__file__).resolve().parents[2] / "requirements-dev.txt")["mlflow"]
    assert "mlflow" not in pins
    # numpy and pandas the server itself needs; the rest is what full mlflow adds.
    assert sorted(set(mr.FULL_ONLY_DISTRIBUTIONS) & set(pins)) == ["cryptography", "numpy", "pandas"]


def test_the_list_of_what_only_full_mlflow_brings_is_mlflows_own_metadata() -> None:
    def names(distribution: str) -> set[str]:
        requires = importlib.metadata.requires(distribution) or []
        return {mr.canonical(re.split(r"[ <>=!~;\[]", r, maxsplit=1)[0]) for r in requires if "extra ==" not in r}

    pinned = locked(MODEL_IMAGE / "requirements.txt")["mlflow-skinny"]
    assert importlib.metadata.version("mlflow") == pinned  # read at the version the image pins
    full_only = names("mlflow") - names("mlflow-skinny") - {"mlflow-skinny", "mlflow-tracing"}
    assert sorted(full_only) == list(mr.FULL_ONLY_DISTRIBUTIONS)


def test_the_hint_names_the_distribution_and_says_full_mlflow_brought_it() -> None:
    assert "`scikit-learn`, which the full `mlflow` package brings" in mr.missing_library_hint("sklearn.ensemble")
    assert "`matplotlib`, which the full `mlflow` package brings" in mr.missing_library_hint("matplotlib.pyplot")
    assert "full `mlflow`" not in mr.missing_library_hint("lightgbm")
    assert "`lightgbm`" in mr.missing_library_hint("lightgbm")


MISSING_LIBRARY_MODEL = textwrap.dedent(
    """
    from mlflow.models import set_model
    from mlflow.pyfunc.model import PythonModel


    class NeedsMatplotlib(PythonModel):
        def load_context(self, context):
            # What `import matplotlib` raises in a venv without it.
            raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")

        def predict(self, context, model_input, params=None):
            return model_input


    set_model(NeedsMatplotlib())
    """
)


def test_a_model_that_needs_what_only_full_mlflow_brings_fails_to_load_saying_what_to_add(tmp_path: Path) -> None:
    import warnings

    import mlflow.pyfunc
    import pandas as pd

    code = tmp_path / "needs_matplotlib.py"
    code.write_text(MISSING_LIBRARY_MODEL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        mlflow.pyfunc.save_model(
            str(tmp_path / "model"), python_model=str(code), input_example=pd.DataFrame({"x": [1.0]})
        )
    settings = load_settings({}, model_dir=tmp_path / "model")
    with pytest.raises(ModelLoadError) as caught:
        load_model(settings)
    message = str(caught.value)
    assert "No module named 'matplotlib'" in message
    assert "The model needs `matplotlib`, which the full `mlflow` package brings but mlflow-skinny" in message
    assert "add `matplotlib` to the model's requirements" in message
