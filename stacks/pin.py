"""`python -m stacks pin <stack> --model <name> --version <v> [--digest sha256:...]`: change the pinned model.

A pin changes one value in `Pulumi.<stack>.yaml` (the version, plus `imageDigest` when a rollback serves an image
already built) and nothing else; a day-zero stack file, which pins no model yet, gets the `model` mapping added
(name, version, and imageDigest if given) before `serving`. The file is edited through ruamel.yaml's round-trip
mode, which keeps comments, key order, quotes and indentation, and the result is compared line by line with the
original before it is written. Any other difference (a comment lost, a line re-wrapped) makes the pin refuse to
write.

The edited config is validated exactly as `pulumi up` would read it (`stacks.files` + `stacks.settings`), so a bad
version is reported as a `SettingsError` naming the key and the file, and the file stays untouched.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import io
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from stacks.files import load_stack_config, stack_file
from stacks.settings import PROJECT
from stacks.settings_errors import SettingsError

MODEL_KEY = "model"
_PIN_FIELDS = ("name", "version", "imageDigest")
# The keys of the model mapping a pin may change; every other line of the file must stay as it is.
_PIN_LINE = re.compile(r"^\s+(name|version|imageDigest)\s*:")
# The lines a first pin adds besides those: the mapping's own key.
_NEW_BLOCK_LINE = re.compile(rf"^\s+(({re.escape(PROJECT)}:)?{MODEL_KEY}\s*:\s*|catalog: workspace)$")
# Indentations tried, most likely first: (mapping, sequence, offset). The project's files use the first.
_INDENTS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (2, 4, 0), (4, 4, 0))


@dataclass(frozen=True)
class PinResult:
    """What a pin did: `changed` is False when the stack already pinned exactly this."""

    changed: bool
    path: Path
    old_version: Any
    new_version: int
    model: str = ""
    old_digest: str | None = None
    new_digest: str | None = None

    def describe(self) -> str:
        """One line for people: what changed, or that nothing had to."""
        digest = f" (image {self.new_digest})" if self.new_digest else ""
        if not self.changed:
            return f"{self.path.name}: {self.model} already pinned at version {self.new_version}{digest}"
        if self.old_version is None:
            return f"{self.path.name}: {self.model} pinned at version {self.new_version}{digest} (first pin)"
        parts = []
        if self.old_version != self.new_version:
            parts.append(f"version {self.old_version} -> {self.new_version}")
        if self.old_digest != self.new_digest:
            parts.append(f"imageDigest {self.old_digest or 'none'} -> {self.new_digest or 'none (build)'}")
        return f"{self.path.name}: {self.model} {', '.join(parts)}"


def _yaml(mapping: int, sequence: int, offset: int) -> YAML:
    yaml = YAML()  # round-trip
    yaml.preserve_quotes = True
    yaml.width = 1 << 16  # never re-wrap a long line
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _dump(yaml: YAML, data: Any) -> str:
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _round_trip_yaml(text: str, name: str) -> tuple[YAML, Any]:
    """A YAML instance that writes `text` back unchanged, and the document it loaded."""
    for indent in _INDENTS:
        yaml = _yaml(*indent)
        try:
            data = yaml.load(text)
        except YAMLError as exc:
            raise SettingsError(name, [f"{name}: not valid YAML: {str(exc).splitlines()[0]}"]) from None
        if _dump(yaml, data) == text:
            return yaml, data
    raise SettingsError(
        name,
        [
            f"{name}: cannot be edited without reformatting it (unusual indentation or layout); "
            "change the pin by hand or normalise the file first"
        ],
    )


def _parse_version(raw: str | int) -> Any:
    """The value as it would read if typed into the stack file: "3" -> 3, "1.5" -> 1.5, "abc" -> "abc"."""
    if isinstance(raw, int):
        return raw
    text = raw.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def _styled_like(old: Any, new: Any) -> Any:
    """Keep the quoting of the value being replaced ("3" stays quoted, 3 stays plain)."""
    if isinstance(old, DoubleQuotedScalarString):
        return DoubleQuotedScalarString(str(new))
    if isinstance(old, SingleQuotedScalarString):
        return SingleQuotedScalarString(str(new))
    return new


def _model_block(data: Any, name: str) -> tuple[CommentedMap, bool]:
    """The stack's model mapping, and whether it was just added (a day-zero file pins no model yet)."""
    config = data.get("config") if isinstance(data, dict) else None
    if not isinstance(config, CommentedMap):
        raise SettingsError(name, [f"{name}: expected a mapping with a `config:` key"])
    for key in (f"{PROJECT}:{MODEL_KEY}", MODEL_KEY):
        if key in config:
            block = config[key]
            if isinstance(block, CommentedMap):
                return block, False
            raise SettingsError(name, [f"{name}: {key}: expected a mapping with name and version"])
    # The first pin: the mapping goes where the shipped files keep it, before `serving`, in their key style.
    key = f"{PROJECT}:{MODEL_KEY}" if any(str(k).startswith(f"{PROJECT}:") for k in config) else MODEL_KEY
    serving = next((k for k in config if str(k) in (f"{PROJECT}:serving", "serving")), None)
    block = CommentedMap()
    config.insert(list(config.keys()).index(serving) if serving is not None else len(config), key, block)
    return block, True


def _split_comment(value: str) -> tuple[str, str]:
    """A key's trailing comment token: (its own end-of-line comment, the whole comment lines that follow it)."""
    if value.startswith("\n"):
        return "", value[1:]
    cut = value.find("\n") + 1 if "\n" in value else len(value)
    return value[:cut], value[cut:]


def _set_trailing(block: CommentedMap, key: Any, token: Any, value: str) -> None:
    entry = block.ca.items.setdefault(key, [None, None, None, None])
    if value:
        token.value = value
        entry[2] = token
    else:
        entry[2] = None
    if all(part is None for part in entry):
        del block.ca.items[key]


def _insert_after(block: CommentedMap, after: Any, key: str, value: Any) -> None:
    """Insert `key` after `after`; comment lines that followed `after` now follow the new key."""
    keys = list(block.keys())
    block.insert(keys.index(after) + 1, key, value)
    entry = block.ca.items.get(after)
    if entry is None or len(entry) < 3 or entry[2] is None:
        return
    token = entry[2]
    own, rest = _split_comment(token.value)
    if not rest:
        return
    moved = copy.copy(token)
    _set_trailing(block, after, token, own)
    _set_trailing(block, key, moved, "\n" + rest)


def _remove(block: CommentedMap, key: str) -> None:
    """Delete `key`; comment lines that followed it now follow the key before it."""
    keys = list(block.keys())
    index = keys.index(key)
    entry = block.ca.items.pop(key, None)
    del block[key]
    if entry is None or len(entry) < 3 or entry[2] is None:
        return
    token = entry[2]
    _own, rest = _split_comment(token.value)
    if not rest or index == 0:
        return
    previous = keys[index - 1]
    before = block.ca.items.get(previous)
    if before is not None and len(before) > 2 and before[2] is not None:
        _set_trailing(block, previous, before[2], before[2].value + rest)
    else:
        _set_trailing(block, previous, token, "\n" + rest)


def _registry_type(data: Any) -> Any:
    config = data.get("config") or {}
    registry = config.get(f"{PROJECT}:modelRegistry", config.get("modelRegistry"))
    return registry.get("type") if isinstance(registry, dict) else None


def _semantic_difference(old: str, new: str) -> list[str]:
    """Keys whose values differ between two versions of a stack file, other than the pin's own fields."""
    safe = YAML(typ="safe", pure=True)
    before, after = safe.load(old) or {}, safe.load(new) or {}
    config_before, config_after = dict(before.pop("config", None) or {}), dict(after.pop("config", None) or {})
    changed = [key for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]
    for key in sorted(set(config_before) | set(config_after)):
        a, b = config_before.get(key), config_after.get(key)
        if key in (f"{PROJECT}:{MODEL_KEY}", MODEL_KEY):
            # An absent model mapping is an empty one (a day-zero file): the first pin only adds pin fields to it.
            if a is None and isinstance(b, dict):
                a = {k: v for k, v in b.items() if k == "catalog"}
            a, b = a if a is not None else {}, b if b is not None else {}
        if key in (f"{PROJECT}:{MODEL_KEY}", MODEL_KEY) and isinstance(a, dict) and isinstance(b, dict):
            a = {k: v for k, v in a.items() if k not in _PIN_FIELDS}
            b = {k: v for k, v in b.items() if k not in _PIN_FIELDS}
        if a != b:
            changed.append(f"config.{key}")
    return changed


def _check_only_pin_lines_changed(old: str, new: str, name: str, *, added: bool = False) -> None:
    other = _semantic_difference(old, new)
    if other:
        raise SettingsError(name, [f"{name}: refusing to write: the edit would change {', '.join(other)}"])
    old_lines = old.splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    stray: list[str] = []
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal":
            continue
        stray += [f"-{line.rstrip()}" for line in old_lines[a0:a1] if not _PIN_LINE.match(line)]
        stray += [
            f"+{line.rstrip()}"
            for line in new_lines[b0:b1]
            if not _PIN_LINE.match(line) and not (added and _NEW_BLOCK_LINE.match(line))
        ]
    if stray:
        shown = "; ".join(stray[:4])
        raise SettingsError(
            name,
            [f"{name}: refusing to write: the edit would change more than the pin ({shown}); change it by hand"],
        )


@dataclass(frozen=True)
class Pinned:
    """The model a stack file pins."""

    name: str
    version: int
    image_digest: str | None


def _validated(project_dir: Path, stack: str, text: str) -> Pinned:
    """Validate a stack file's text exactly as the program reads it, from a scratch copy of the project file."""
    with tempfile.TemporaryDirectory(prefix="stacks-pin-") as scratch:
        root = Path(scratch)
        shutil.copyfile(project_dir / "Pulumi.yaml", root / "Pulumi.yaml")
        stack_file(root, stack).write_text(text, encoding="utf-8", newline="")
        settings = load_stack_config(root, stack).settings()
    model = settings.model
    if model is None:  # cannot happen: a pin always leaves name and version
        raise SettingsError(stack_file(root, stack).name, [f"{MODEL_KEY}: the pin left no model"])
    return Pinned(model.name, model.version, model.image_digest)


def current_pin(project_dir: Path | str, stack: str) -> Pinned:
    """The model a stack file pins now (validated); a SettingsError naming the key if it pins none (day zero)."""
    config = load_stack_config(Path(project_dir), stack)
    model = config.settings().model
    if model is None:
        raise SettingsError(config.source, [f"{config.source}: {PROJECT}:{MODEL_KEY}: no model pinned yet (day zero)"])
    return Pinned(model.name, model.version, model.image_digest)


def _same(old: Any, new: Any) -> bool:
    # `version: "3"` and 3 mean the same to the settings; an unchanged value keeps its quoting.
    return old is not None and not isinstance(old, bool) and str(old) == str(new)


def _apply(block: CommentedMap, model: str, version: Any, image_digest: str | None) -> None:
    """Set name, version and imageDigest in the model mapping, touching only what differs."""
    if not _same(block.get("name"), model):
        block["name"] = _styled_like(block.get("name"), model)
    if not _same(block.get("version"), version):
        if "version" in block:
            block["version"] = _styled_like(block["version"], version)
        else:
            _insert_after(block, list(block.keys())[-1], "version", version)
    if image_digest is None:
        if "imageDigest" in block:
            _remove(block, "imageDigest")
    elif "imageDigest" not in block:
        _insert_after(block, "version", "imageDigest", image_digest)
    elif not _same(block["imageDigest"], image_digest):
        block["imageDigest"] = _styled_like(block["imageDigest"], image_digest)


def pin(
    project_dir: Path | str,
    stack: str,
    model: str,
    version: str | int,
    image_digest: str | None = None,
    *,
    allow_model_change: bool = False,
) -> PinResult:
    """Pin `model` at `version` in `Pulumi.<stack>.yaml`, with `imageDigest` set to `image_digest` or removed.

    Idempotent: pinning what is pinned changes nothing (`changed` False, file not rewritten). Raises SettingsError,
    file untouched, when the stack file is missing, the result would not validate, the model differs from the one
    pinned (unless `allow_model_change`), or the edit would change any line but the pin's own.
    """
    project_dir = Path(project_dir)
    path = stack_file(project_dir, stack)
    name = path.name
    if not path.exists():
        load_stack_config(project_dir, stack)  # raises "no such stack file (stacks here: ...)"
    try:
        original = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise SettingsError(name, [f"{name}: not UTF-8 text"]) from None
    crlf = "\r\n" in original
    text = original.replace("\r\n", "\n") if crlf else original

    yaml, data = _round_trip_yaml(text, name)
    block, added = _model_block(data, name)
    pinned_name = block.get("name")
    if pinned_name is not None and str(pinned_name) != model and not allow_model_change:
        raise SettingsError(
            name,
            [
                f"{name}: {PROJECT}:{MODEL_KEY}.name: the stack pins {pinned_name!s}, not {model}; a pin changes the "
                "version, not which model is served (pass --allow-model-change to switch models)"
            ],
        )
    old_version = block.get("version")
    old_digest = block.get("imageDigest")
    new_version = _parse_version(version)

    _apply(block, model, new_version, image_digest)
    if added and _registry_type(data) == "workspace":
        block["catalog"] = "workspace"  # the model mapping's default is Unity Catalog; the registry says otherwise
    new_text = _dump(yaml, data)
    if crlf:
        new_text = new_text.replace("\n", "\r\n")
    pinned = _validated(project_dir, stack, new_text)  # a bad value is a settings problem, reported first
    _check_only_pin_lines_changed(original, new_text, name, added=added)
    result = PinResult(
        changed=new_text != original,
        path=path,
        old_version=old_version,
        new_version=pinned.version,
        model=pinned.name,
        old_digest=None if old_digest is None else str(old_digest),
        new_digest=pinned.image_digest,
    )
    if result.changed:
        _write_atomically(path, new_text)
    return result


def _write_atomically(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- the CLI `python -m stacks pin` dispatches to -------------------------------------------------------------------


def add_pin_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `python -m stacks pin`."""
    parser.add_argument("stack", help="the stack whose file to change, e.g. staging")
    parser.add_argument("--model", required=True, help="the registered model name (must be the one pinned)")
    parser.add_argument("--version", required=True, help="the model version to serve (a positive integer)")
    parser.add_argument(
        "--digest",
        default=None,
        help="serve this already-built image (sha256:...) instead of building; without it imageDigest is removed",
    )
    parser.add_argument(
        "--allow-model-change", action="store_true", help="allow pinning a different model than the one pinned now"
    )
    # SUPPRESS: a --project-dir of the parent parser is not overwritten by this sub-command's default.
    parser.add_argument("--project-dir", type=Path, default=argparse.SUPPRESS, help="the Pulumi project (default: cwd)")


def run_pin(args: argparse.Namespace) -> int:
    """Runs a parsed `pin` command: prints one line, returns 0, or 2 with the problems on stderr."""
    project_dir = Path(getattr(args, "project_dir", None) or Path.cwd())
    try:
        result = pin(
            project_dir,
            args.stack,
            args.model,
            args.version,
            args.digest,
            allow_model_change=bool(getattr(args, "allow_model_change", False)),
        )
    except SettingsError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    print(result.describe())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.pin", description=__doc__.splitlines()[0])
    add_pin_arguments(parser)
    return run_pin(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
