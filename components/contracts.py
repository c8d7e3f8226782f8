"""The other deployables' contracts, as the program sees them: the model server's and the listener's.

Each deployable states what others rely on (environment variable names, port, uid, queue and table names) in a
standard-library-only module of its own package: `model_image/model_server/contract.py` and
`listener/webhook_listener/contract.py`, which their settings classes use too. The program may import those modules
without the deployables' dependencies (MLflow, the Azure SDKs, pydantic-settings), which its requirements.txt does not
hold and need not: neither package's `__init__` imports anything, and a contract module only the standard library.
They import the ordinary, installed way: the venv that runs the program (`.venv`, Pulumi.yaml's `virtualenv`) is
made by scripts/bootstrap.sh, whose `.pth` puts `model_image/` and `listener/` on the path, as an editable install
would. (`diff --base` previews another tree in this process; `offline.isolation` gives it its own contracts.)
"""

from __future__ import annotations

# A venv not made by scripts/bootstrap.sh lacks the roots: e.g. one `pulumi install` fills from requirements.txt alone
# (www.pulumi.com/docs/iac/cli/commands/pulumi_install/: "Install packages and plugins for the current program").
try:
    from model_server import contract as server
    from webhook_listener import contract as listener
except ModuleNotFoundError as exc:
    raise ModuleNotFoundError(
        f"{exc.name} is not importable: the program imports the deployables' contracts from model_image/ and "
        "listener/, which ./scripts/bootstrap.sh puts on .venv's path (mlops_serving_dev.pth); run it first",
        name=exc.name,
    ) from exc

__all__ = ["listener", "server"]
