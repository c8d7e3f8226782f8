"""Build the listener's deployment zip: exactly the files the Pulumi component lists, nothing else.

    python -m release.package_listener --out listener.zip

Flex Consumption only runs a package published through its "one deploy" endpoint (which also runs the remote
build that installs requirements.txt), so the deploy workflow publishes this zip after every `pulumi up` with
`python -m release.publish_listener` (`az functionapp deployment source config-zip --build-remote true`). The file
list is the component's, so what is published is what the program describes.
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

from components.webhook_listener import package_files, package_sha256

# A fixed timestamp makes the zip a function of the files alone: the same source gives the same bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def build(source_dir: Path, out: Path) -> str:
    """Writes the zip and returns the source's SHA-256 (the component records the same value on the blob)."""
    files = package_files(source_dir)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, path in files:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return package_sha256(files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m release.package_listener", description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("listener"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    digest = build(args.source, args.out)
    print(f"{args.out}: {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
