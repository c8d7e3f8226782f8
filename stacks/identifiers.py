"""The shapes of the identifiers that cross between the program, the release tools and the local stand-ins, once.

An image digest, a registered model's name and a stack's name are checked where they enter (a stack file, a
dispatch payload, a command-line flag, a stack output) with these patterns. Two copies stay apart on purpose: the
listener (`listener/webhook_listener/schemas.py`) and the policy pack (`policies/rules.py`) ship and run without
this repository's other packages, so each keeps its own, and a test holds each copy equal to these. A model's
Kubernetes name (`kubernetes_name`) is derived here too: the program names the model's objects with it and the
alert rules and release tools find them by it.
"""

from __future__ import annotations

import re
from typing import Final

DIGEST_PATTERN: Final = r"sha256:[0-9a-f]{64}"
"""An OCI content digest as registries name images: `sha256:` and 64 lowercase hex digits."""
DIGEST: Final = re.compile(rf"^{DIGEST_PATTERN}$")
DIGEST_ANYWHERE: Final = re.compile(DIGEST_PATTERN)
"""A digest inside other text (an image reference, a stack output)."""

MODEL_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,126}$"
"""A registered model's name: a workspace registry name, or a Unity Catalog `catalog.schema.model`."""
MODEL_NAME: Final = re.compile(MODEL_NAME_PATTERN)

STACK_NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,39}$"
"""This project's stack names: lowercase, digits and `-`, at most 40 (they become resource-name parts and
registry tag keys, where `-` turns into `_`)."""
STACK_NAME: Final = re.compile(STACK_NAME_PATTERN)

REPOSITORY_PATTERN: Final = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"
"""A GitHub repository, `<owner>/<name>`: where the listener dispatches a release and the release tools act."""
REPOSITORY: Final = re.compile(REPOSITORY_PATTERN)


def kubernetes_name(model_name: str) -> str:
    """The DNS-1123 label a model's Kubernetes objects are named with (`Wine_Quality` -> `wine-quality`).

    A Unity Catalog name's catalog and schema are the platform's own (`mlops.models.wine_quality` ->
    `wine-quality`): the label names the model, and stays within Kubernetes' 63 characters.
    """
    if model_name.count(".") == 2:
        model_name = model_name.rsplit(".", 1)[1]
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", model_name.lower())).strip("-")
