"""Values as they cross Pulumi's RPC boundary: secret wrappers and assets, read the way the engine reads them.

Both the harness (which records what the program registers) and the mock cloud (which answers it) read wire
values; this module is what they share, so neither imports the other for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pulumi
from pulumi.output import Unknown
from pulumi.runtime import rpc

# The marker Pulumi's RPC layer wraps secret values in.
_SECRET_SIG = rpc._special_sig_key
_SECRET_VALUE = rpc._special_secret_sig


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def describe_asset(value: pulumi.Asset | pulumi.Archive) -> dict[str, Any]:
    """An asset or archive as the engine would see it: by content, never by where it sits on this machine.

    The engine diffs assets by content hash, so a checkout in another directory declares the same package, and a
    one-byte change to a source file is a change.
    """
    if isinstance(value, pulumi.FileAsset):
        return {"asset": "file", "sha256": _file_digest(Path(str(value.path)))}
    if isinstance(value, pulumi.StringAsset):
        return {"asset": "string", "sha256": hashlib.sha256(value.text.encode()).hexdigest()}
    if isinstance(value, pulumi.RemoteAsset | pulumi.RemoteArchive):
        return {"remote": str(value.uri)}
    if isinstance(value, pulumi.AssetArchive):
        return {"archive": {name: describe_asset(item) for name, item in sorted(value.assets.items())}}
    if isinstance(value, pulumi.FileArchive):
        root = Path(str(value.path))
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        digest = hashlib.sha256()
        for file in files:
            digest.update(file.relative_to(root).as_posix().encode() if root.is_dir() else b"")
            digest.update(_file_digest(file).encode())
        return {"archive": "file", "sha256": digest.hexdigest()}
    return {"asset": type(value).__name__}


def unwrap(value: Any, path: str, secrets: list[str]) -> Any:
    """`value` without secret wrappers and with assets described by content; appends each secret's path to `secrets`."""
    if isinstance(value, pulumi.Asset | pulumi.Archive):
        return describe_asset(value)
    if isinstance(value, dict):
        if value.get(_SECRET_SIG) == _SECRET_VALUE:
            secrets.append(path)
            return unwrap(value.get("value"), path, secrets)
        return {k: unwrap(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    if isinstance(value, Unknown):
        # A value a preview does not know yet, as the engine writes it (and two unknowns compare equal).
        return rpc.UNKNOWN
    return value


def unwrap_secrets(value: Any) -> Any:
    """A value with Pulumi's secret wrappers removed (the mocks see wrapped inputs)."""
    return unwrap(value, "", [])


def secret_paths_in(value: Any) -> Sequence[str]:
    """Paths of the secret-wrapped values inside `value` (for tests of the mocks themselves)."""
    found: list[str] = []
    unwrap(value, "", found)
    return found
