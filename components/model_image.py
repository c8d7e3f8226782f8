"""The model image: built once per (model version, image code) in the stack that owns the registry, run everywhere
else by digest."""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pulumi
import pulumi_docker_build as docker_build

from components import azure_facts
from stacks.identifiers import DIGEST

# Azure Databricks' application id: the audience of an Entra token that the Databricks REST API (and so MLflow's
# registry client) accepts in place of a personal access token.
DATABRICKS_RESOURCE = azure_facts.AZURE_DATABRICKS_APP_ID
# The BuildKit secret the Dockerfile mounts to fetch the model; kept out of every layer and out of the diff.
TOKEN_SECRET_ID = "mlflow_token"
# The Dockerfile's stage that holds the image's CycloneDX SBOM and nothing else, and the file's name in it.
SBOM_TARGET = "sbom-file"
SBOM_FILE = "model-image.cdx.json"


def _default_sbom_dir() -> str:
    return f"build/sbom/{pulumi.get_stack()}"


def _ignored(rel: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        if (
            fnmatch.fnmatch(rel, pat)
            or fnmatch.fnmatch(rel, f"{pat}/*")
            or fnmatch.fnmatch(rel.split("/", maxsplit=1)[0], pat)
        ):
            ignored = not negate
    return ignored


def image_code_hash(context_dir: Path) -> str:
    """A short hash of everything that goes into the build context (the same files `.dockerignore` lets through).

    It names the image's code in the tag, so a change to the server or the Dockerfile gives a new tag, and
    nothing else does: no timestamps, no git SHAs of unrelated commits.
    """
    ignore = context_dir / ".dockerignore"
    patterns = [line.strip() for line in (ignore.read_text().splitlines() if ignore.exists() else []) if line.strip()]
    patterns = [p for p in patterns if not p.startswith("#")]
    digest = hashlib.sha256()
    for path in sorted(p for p in context_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(context_dir).as_posix()
        if "__pycache__" in rel.split("/") or rel.endswith(".pyc") or _ignored(rel, patterns):
            continue
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def repository(model_name: str) -> str:
    """The registry repository of a model's images (registry repository names are lowercase)."""
    return "models/" + re.sub(r"[^a-z0-9._-]+", "-", model_name.lower())


@dataclass(frozen=True)
class RegisteredModel:
    """A registered model version: its name, its version and the registry it is fetched from."""

    name: str
    """The registered name (`catalog.schema.model` in Unity Catalog)."""
    version: int
    """The registered version, from 1."""
    registry: Literal["unity-catalog", "workspace"] = "unity-catalog"
    """Unity Catalog, or the legacy workspace model registry: MLflow's tracking URI differs."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name: a registered model name is required")
        if self.version < 1:
            raise ValueError(f"version: registered versions start at 1 (got {self.version})")

    @property
    def tracking_uri(self) -> str:
        """MLflow's registry URI for this model's registry (`databricks-uc` is Unity Catalog)."""
        return "databricks-uc" if self.registry == "unity-catalog" else "databricks"


@dataclass(frozen=True)
class ModelImageArgs:
    """What to build and where to push it."""

    model: RegisteredModel
    """The pinned model: its registered name and version (the image holds that version)."""
    login_server: pulumi.Input[str]
    """The registry's login server the image is pushed to (`<name>.azurecr.io`)."""
    # The context is given to the provider relative to the project (Pulumi runs programs from there), so that the
    # same tree checked out elsewhere declares the same image.
    project_dir: Path
    """The project directory; the build context is inside it."""
    workspace_url: pulumi.Input[str]
    """The Databricks workspace the build fetches the model from."""
    registry_token: pulumi.Input[str]
    """An Entra token for the Databricks workspace (a secret), mounted as a BuildKit secret for the fetch step."""
    context: str = "model_image"
    """The build context, relative to `project_dir`."""
    push_after: Sequence[pulumi.Resource] = ()
    """What the push must wait for: the pusher's AcrPush grant, once in effect (ContainerRegistry.push_ready)."""
    sbom_dir: str = field(default_factory=_default_sbom_dir)
    """Where the build writes the image's SBOM (`<sbom_dir>/model-image.cdx.json`), relative to `project_dir`."""


class ModelImage(pulumi.ComponentResource):
    """Owns the `pulumi_docker_build.Image` of `model_image/` for the pinned model version.

    The image is rebuilt when, and only when, the model version or the image's code changes: both are in the tag
    and the build args, and nothing volatile is. The registry token rotates on every run, so it is excluded from
    the diff. Old images are retained on delete, so every version stays in the registry for rollback.
    The image's SBOM (the Dockerfile's `sbom-file` stage) is built after it from the same cache and written to
    `sbom_dir`, where the deploy job attaches it to the digest and keeps it as an artifact.
    Registered outputs: `tag`, `digest`, `ref` (`<tag>@<digest>`, what the deployments run), `sbomDir`.
    """

    tag: pulumi.Output[str]
    digest: pulumi.Output[str]
    ref: pulumi.Output[str]
    code_hash: str
    sbom_dir: str

    def __init__(self, name: str, args: ModelImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:release:ModelImage", name, None, opts)
        context_dir = args.project_dir / args.context
        if not (context_dir / "Dockerfile").is_file():
            raise ValueError(f"context: no Dockerfile in {context_dir}")
        model = args.model
        self.code_hash = image_code_hash(context_dir)
        repo = pulumi.Output.concat(args.login_server, "/", repository(model.name))
        self.tag = pulumi.Output.concat(repo, ":", str(model.version), "-", self.code_hash)
        cache_ref = pulumi.Output.concat(repo, ":buildcache")
        sbom_cache = pulumi.Output.concat(repo, ":sbomcache")
        tracking_uri = model.tracking_uri
        if Path(args.sbom_dir).is_absolute() or ".." in Path(args.sbom_dir).parts:
            raise ValueError(f"sbom_dir: expected a path inside the project, relative to it, got {args.sbom_dir!r}")
        self.sbom_dir = args.sbom_dir
        build_args: dict[str, pulumi.Input[str]] = {
            "MODEL_NAME": model.name,
            "MODEL_VERSION": str(model.version),
            "MLFLOW_TRACKING_URI": tracking_uri,
            "DATABRICKS_HOST": args.workspace_url,
            "IMAGE_CODE_HASH": self.code_hash,
        }
        cache_from = [docker_build.CacheFromArgs(registry=docker_build.CacheFromRegistryArgs(ref=cache_ref))]
        image = docker_build.Image(
            f"{name}-image",
            context=docker_build.BuildContextArgs(location=args.context),
            dockerfile=docker_build.DockerfileArgs(location=f"{args.context}/Dockerfile"),
            platforms=[docker_build.Platform.LINUX_AMD64],
            build_args=build_args,
            labels={
                "org.opencontainers.image.title": repository(model.name),
                "org.opencontainers.image.version": f"{model.version}-{self.code_hash}",
                "ai.mlflow.model.name": model.name,
                "ai.mlflow.model.version": str(model.version),
            },
            secrets={TOKEN_SECRET_ID: pulumi.Output.secret(args.registry_token)},
            ignore_secrets_in_diff_calculation=[TOKEN_SECRET_ID],
            tags=[self.tag],
            push=True,
            # Preview must not need a Docker daemon, and must not push anything.
            build_on_preview=False,
            cache_from=cache_from,
            cache_to=[
                docker_build.CacheToArgs(
                    registry=docker_build.CacheToRegistryArgs(
                        ref=cache_ref,
                        mode=docker_build.CacheMode.MAX,
                        image_manifest=True,
                        oci_media_types=True,
                    )
                )
            ],
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True, depends_on=list(args.push_after)),
        )
        # The SBOM: the same build up to the sbom stage (every shared stage a cache hit once the image pushed the
        # cache), its one file written to a local directory and pushed nowhere. The provider rebuilds it whenever
        # that directory is missing or empty, so a fresh CI runner always gets it
        # (github.com/pulumi/pulumi-docker-build provider/internal/image.go Diff, "Confirm local exports exist").
        docker_build.Image(
            f"{name}-sbom",
            context=docker_build.BuildContextArgs(location=args.context),
            dockerfile=docker_build.DockerfileArgs(location=f"{args.context}/Dockerfile"),
            platforms=[docker_build.Platform.LINUX_AMD64],
            target=SBOM_TARGET,
            build_args=build_args,
            secrets={TOKEN_SECRET_ID: pulumi.Output.secret(args.registry_token)},
            ignore_secrets_in_diff_calculation=[TOKEN_SECRET_ID],
            push=False,
            build_on_preview=False,
            # Its own cache ref: a registry cache export replaces the ref's cache with this build's, and the image's
            # `runtime` target never builds the sbom stage, so only this cache keeps it between deploys.
            cache_from=[
                *cache_from,
                docker_build.CacheFromArgs(registry=docker_build.CacheFromRegistryArgs(ref=sbom_cache)),
            ],
            cache_to=[
                docker_build.CacheToArgs(
                    registry=docker_build.CacheToRegistryArgs(
                        ref=sbom_cache, mode=docker_build.CacheMode.MAX, image_manifest=True, oci_media_types=True
                    )
                )
            ],
            exports=[docker_build.ExportArgs(local=docker_build.ExportLocalArgs(dest=self.sbom_dir))],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[image]),
        )
        self.digest = image.digest
        self.ref = image.ref
        self.register_outputs({"tag": self.tag, "digest": self.digest, "ref": self.ref, "sbomDir": self.sbom_dir})


def pinned_image_ref(login_server: pulumi.Input[str], model: RegisteredModel, digest: str) -> pulumi.Output[str]:
    """The reference of an image already in the registry, by the digest the stack file pins (rollback).

    The digest alone decides what runs (a runtime ignores the tag when a digest is given); the version in the tag
    is there for people reading `kubectl get pods`.
    """
    if not DIGEST.match(digest):
        raise ValueError(f"digest: expected sha256:<64 hex>, got {digest!r}")
    return pulumi.Output.concat(login_server, "/", repository(model.name), ":", str(model.version), "@", digest)
