"""The shapes of the identifiers that cross between the program, the release tools and the local stand-ins, once.

An image digest, a registered model's name and a stack's name are checked where they enter (a stack file, a
dispatch payload, a command-line flag, a stack output) with these patterns. Two copies stay apart on purpose: the
listener (`listener/webhook_listener/schemas.py`) and the policy pack (`policies/rules.py`) ship and run without
this repository's other packages, so each keeps its own, and a test holds each copy equal to these.
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
