"""The other deployables' contracts, as the program sees them: the model server's and the listener's.

Each deployable states what others rely on (environment variable names, port, uid, queue and table names) in a
standard-library-only module of its own package: `model_image/model_server/contract.py` and
`listener/webhook_listener/contract.py`, which their settings classes use too. The program imports those modules
from its own checkout's source roots, put first on `sys.path` here: the program's requirements.txt does not hold
the deployables' dependencies (MLflow, the Azure SDKs, pydantic-settings) and need not, as neither package's
`__init__` imports anything. First on the path, because the dev venv's `.pth` names one checkout's roots, and an
offline diff runs another checkout's program (`diff --base`), which must read its own contracts.
"""

from __future__ import annotations

import sys
from pathlib import Path

_PROJECT = Path(__file__).resolve().parent.parent
for _root in (_PROJECT / "model_image", _PROJECT / "listener"):
    if sys.path[:2].count(str(_root)) == 0:
        sys.path.insert(0, str(_root))

from model_server import contract as server  # noqa: E402
from webhook_listener import contract as listener  # noqa: E402

__all__ = ["listener", "server"]
