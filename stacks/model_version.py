"""Model versions: the one rule for what a registered model version is, and the one parser every reader uses.

The stack settings (`model.version`), `python -m stacks pin`, the promote, rollback and deployment-record scripts and
the prod image resolution all read versions through `parse_model_version`. A version is what the MLflow and
Databricks registries number versions with: a positive integer, written without leading zeros (a stack file's `3`,
or the string "3" that `pulumi config set` and webhook payloads carry), at most 10 digits.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_VERSION = re.compile(r"[1-9][0-9]{0,9}")
EXPECTED = "a positive integer, e.g. 3"


def parse_model_version(value: object) -> int:
    """`3` or `"3"` (surrounding blanks ignored) -> 3; anything else raises ValueError saying what is expected."""
    if isinstance(value, bool):  # a YAML `true` is an int to Python, never a version
        raise ValueError(EXPECTED)
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError(EXPECTED)
    if not _VERSION.fullmatch(text):
        raise ValueError(EXPECTED)
    return int(text)


ModelVersion = Annotated[int, BeforeValidator(parse_model_version)]
"""A model version in a pydantic model: validated by `parse_model_version`, an `int` from then on."""
