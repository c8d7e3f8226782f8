"""Runs the real `__main__.py` under Pulumi's mocks with a stack's real config, and records what it declares.

Every resource registration is captured from the raw RPC request, so that options the `Mocks` interface never
sees (parent, protect, dependsOn, provider, ignoreChanges, retainOnDelete, ...) are recorded too, along with
which inputs are secret. The mocks answer with realistic provider-computed outputs (see `offline.mockcloud`).
Only the Azure, Databricks, Docker and Kubernetes APIs are simulated; the program runs as it would for real.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import runpy
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from offline.cloud_facts import DEPLOYER_OBJECT_ID, PrincipalType
from offline.isolation import idle_loop
from offline.mockcloud import MockCloud
from offline.wire import secret_paths_in, unwrap, unwrap_secrets

__all__ = [
    "ProgramOptions",
    "ProgramRun",
    "RecordedResource",
    "RecordingMonitor",
    "preview_program",
    "run_program",
    "secret_paths_in",
    "unwrap_secrets",
]


@dataclass(frozen=True)
class RecordedResource:
    """One resource as the program registered it: inputs by wire (camelCase) name and every option."""

    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    secret_inputs: tuple[str, ...]
    protect: bool
    dependencies: tuple[str, ...]
    property_dependencies: dict[str, tuple[str, ...]]
    provider: str
    ignore_changes: tuple[str, ...]
    replace_on_changes: tuple[str, ...]
    delete_before_replace: bool
    retain_on_delete: bool
    additional_secret_outputs: tuple[str, ...]
    aliases: tuple[str, ...]
    # Read (an existing resource looked up, e.g. a StackReference), not managed by this stack.
    read: bool = False

    @property
    def parent_type(self) -> str:
        """The type of the parent, read from this resource's URN (`...::parentType$type::name`)."""
        qualified = self.urn.split("::")[2]
        parts = qualified.split("$")
        return parts[-2] if len(parts) > 1 else ""


@dataclass
class ProgramRun:
    """What one run of the program declared, exported and asked the cloud."""

    project: str
    stack: str
    resources: list[RecordedResource]
    outputs: dict[str, Any]
    secret_outputs: list[str]
    invokes: list[tuple[str, dict[str, Any]]]
    stack_urn: str = ""
    # The same program as the engine's preview ran it first (dry run, every new resource's computed outputs
    # unknown); None for the dry run itself.
    preview: ProgramRun | None = None

    def all(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> RecordedResource:
        found = [r for r in self.all(type_) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.all(type_)]
            raise LookupError(f"expected one {type_}{f' named {name}' if name else ''}, found {names}")
        return found[0]

    def by_urn(self, urn: str) -> RecordedResource:
        for r in self.resources:
            if r.urn == urn:
                return r
        raise LookupError(urn)

    def children(self, parent: RecordedResource) -> list[RecordedResource]:
        return [r for r in self.resources if r.parent == parent.urn]


class RecordingMonitor(pulumi_mocks.MockMonitor):
    # Reads (StackReference, `get` of an existing resource) are recorded too: `pulumi preview` lists them.

    """A mock monitor that keeps every registration request, options included."""

    def __init__(self, mocks: MockCloud) -> None:
        super().__init__(mocks)
        self.cloud = mocks
        self.registrations: list[RecordedResource] = []
        self.stack_urn = ""

    def RegisterResource(self, request: Any) -> Any:
        if request.type == "pulumi:pulumi:Stack":
            response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
            self.stack_urn = response.urn
            return response
        # The cloud sees what the engine would send it: the inputs, and (for its ordering rules) what this
        # resource waits for: its dependencies and its provider.
        raw_inputs = rpc.deserialize_properties(request.object)
        dependencies = {*request.dependencies, *(u for v in request.propertyDependencies.values() for u in v.urns)}
        provider = request.provider.rsplit("::", 1)[0] if request.provider else ""
        self.cloud.admit(request.type, request.name, raw_inputs, dependencies, provider)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        outputs = rpc.deserialize_properties(response.object) if response.object else {}
        self.cloud.record(
            response.urn,
            typ=request.type,
            name=request.name,
            inputs=raw_inputs,
            outputs=outputs,
            dependencies=dependencies,
            provider=provider,
        )
        secret_paths: list[str] = []
        inputs = unwrap(raw_inputs, "", secret_paths)
        top_level_secrets = sorted({p.split(".")[0].split("[")[0] for p in secret_paths})
        self.registrations.append(
            RecordedResource(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent,
                custom=bool(request.custom),
                inputs=cast(dict[str, Any], inputs),
                secret_inputs=tuple(top_level_secrets),
                protect=bool(request.protect),
                dependencies=tuple(request.dependencies),
                property_dependencies={k: tuple(v.urns) for k, v in request.propertyDependencies.items()},
                provider=request.provider,
                ignore_changes=tuple(request.ignoreChanges),
                replace_on_changes=tuple(request.replaceOnChanges),
                delete_before_replace=bool(request.deleteBeforeReplace),
                retain_on_delete=bool(request.retainOnDelete),
                additional_secret_outputs=tuple(request.additionalSecretOutputs),
                aliases=tuple(a.urn if a.urn else a.spec.name for a in request.aliases),
            )
        )
        return response

    def ReadResource(self, request: Any) -> Any:
        response = super().ReadResource(request)  # type: ignore[no-untyped-call]
        secret_paths: list[str] = []
        inputs = unwrap(rpc.deserialize_properties(request.properties), "", secret_paths)
        self.registrations.append(
            RecordedResource(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent,
                custom=True,
                inputs=cast(dict[str, Any], inputs),
                secret_inputs=tuple(sorted({p.split(".")[0].split("[")[0] for p in secret_paths})),
                protect=False,
                dependencies=tuple(request.dependencies),
                property_dependencies={},
                provider=request.provider,
                ignore_changes=(),
                replace_on_changes=(),
                delete_before_replace=False,
                retain_on_delete=False,
                additional_secret_outputs=tuple(request.additionalSecretOutputs),
                aliases=(),
                read=True,
            )
        )
        return response


@dataclass
class ProgramOptions:
    """What the simulated cloud holds besides the program's own resources."""

    # Outputs of other stacks, by fully qualified stack name, for StackReference.
    stack_outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # The prefix of every secret the mock cloud makes up (generated passwords, keys, tokens).
    secret_marker: str = "mocksecret"
    # Who runs the program: a person from a laptop ("User", the README's path) or CI's Entra app.
    caller_principal_type: PrincipalType = "User"
    # Its Entra object id, and the groups it is in. None: a member of every group the stack's `deployers` name (a
    # platform engineer, as the README's day zero has it).
    caller_object_id: str = DEPLOYER_OBJECT_ID
    caller_groups: tuple[str, ...] | None = None
    # How long the caller's Entra tokens stay valid from when they are fetched; None: just issued (60-90 minutes).
    caller_token_seconds_left: float | None = None
    # Key Vault names that soft-deleted vaults still hold (a stack destroyed earlier).
    soft_deleted_key_vaults: tuple[str, ...] = ()
    # Stands for the stack's state: random values differ between a stack and the same stack created anew.
    random_seed: str = ""
    # What the Databricks registry holds before the run (model name -> versions). Empty, as in a workspace the run
    # creates (day zero); a steady-state run says which versions were registered (see offline.preview).
    registry_models: Mapping[str, Sequence[int]] = field(default_factory=dict)


def run_program(
    program: Path | Callable[[], None],
    config: Mapping[str, Any],
    *,
    project: str,
    stack: str,
    options: ProgramOptions | None = None,
) -> ProgramRun:
    """Runs `program` (a `__main__.py`, or a function declaring resources) under the mocks, as `pulumi up` does.

    First as the engine's preview runs it (dry run, see `offline.mockcloud.MockCloud`: every resource is new, its
    computed outputs unknown, invokes through an unconfigured provider empty), then as the update runs it, with
    the cloud's computed outputs filled in; the update's run is returned, the preview's is its `preview`.
    `config` holds `<namespace>:<key>` to values as read from the stack file (objects are sent as JSON, the way
    the engine sends them). Any error the program raises in either run propagates, with the program's own message.
    """
    options = options or ProgramOptions()
    preview = preview_program(program, config, project=project, stack=stack, options=options)
    with _event_loops():
        run = _run_program(program, config, project=project, stack=stack, options=options, dry_run=False)
    run.preview = preview
    return run


def preview_program(
    program: Path | Callable[[], None],
    config: Mapping[str, Any],
    *,
    project: str,
    stack: str,
    options: ProgramOptions | None = None,
) -> ProgramRun:
    """Runs `program` once as the engine's preview does (dry run), and nothing more: `pulumi preview`."""
    with _event_loops():
        return _run_program(
            program, config, project=project, stack=stack, options=options or ProgramOptions(), dry_run=True
        )


@contextlib.contextmanager
def _event_loops() -> Iterator[None]:
    """Gives a run an event loop of its own and closes every loop the run made, on every thread.

    Pulumi's runtime drives its RPCs on the thread's current loop (an async test may have closed or unset it) and
    makes each RPC worker thread a loop of its own that it never closes (`pulumi.runtime.sync_await
    ._ensure_event_loop`, called by `pulumi.runtime.mocks` on every RPC). An unclosed loop is finalized by the
    garbage collector whenever it runs, and if its self-pipe socket is finalized first, `BaseEventLoop.__del__`
    raises `ValueError: Invalid file descriptor: -1`, printed as "Exception ignored in ..." (and failing whatever
    test was running under pytest's unraisable-exception check). So the run's loop gets an executor whose threads
    start with a loop the harness owns, and every one of them is closed when the run is over.
    """
    worker_loops: list[asyncio.AbstractEventLoop] = []
    lock = threading.Lock()
    raised: list[BaseException] = []
    quiet = _quiet_about(raised)

    def give_worker_a_loop() -> None:
        worker_loop = asyncio.new_event_loop()
        worker_loop.set_exception_handler(quiet)
        with lock:
            worker_loops.append(worker_loop)
        asyncio.set_event_loop(worker_loop)

    executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="pulumi-rpc", initializer=give_worker_a_loop)
    loop = asyncio.new_event_loop()
    loop.set_default_executor(executor)
    loop.set_exception_handler(quiet)
    asyncio.set_event_loop(loop)
    try:
        yield
    except BaseException as error:
        raised.append(error)
        raise
    finally:
        executor.shutdown(wait=True)
        for each in (loop, *worker_loops):
            _close_loop(each)
        # Leave the thread with a usable loop, as it would have had without us: the process's one idle loop, kept
        # by offline.isolation, so that no loop is left for the collector to finalize.
        asyncio.set_event_loop(idle_loop())


def _quiet_about(raised: list[BaseException]) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """A handler for a run's loops that stays silent about futures left holding an error once the run has failed.

    The run already raised its error to the caller; what a failed run leaves are futures holding that error or
    Pulumi's wrappers of it, never retrieved, in reference cycles that the collector frees at any later allocation.
    asyncio's default handler then formats their traceback, and on Python 3.11 that calls `ast.parse`: inside
    another `ast.parse` that set off the collection (pytest formatting a failure, a test parsing source), the AST
    builder's depth counter is corrupted and raises `SystemError: AST constructor recursion depth mismatch`
    (python/cpython#106905). A run that succeeded keeps the default handler's report.
    """

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if raised and "exception" in context and "never retrieved" in str(context.get("message", "")):
            return
        loop.default_exception_handler(context)

    return handler


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancels what is still pending on `loop`, lets it finish, then closes the loop.

    A program that fails leaves `Output.apply` tasks that will never run; destroyed pending, each prints "coroutine
    ... was never awaited" when the garbage collector gets to it, during whatever runs next. Cancelling them first,
    as `asyncio.run` does, ends them quietly.
    """
    while pending := asyncio.all_tasks(loop):
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def _run_program(
    program: Path | Callable[[], None],
    config: Mapping[str, Any],
    *,
    project: str,
    stack: str,
    options: ProgramOptions,
    dry_run: bool,
) -> ProgramRun:
    # A fresh root Stack each run: set_mocks keeps an existing one, and the old one carries the old stack name.
    pulumi.runtime.settings.set_root_resource(None)  # type: ignore[arg-type]
    # Config must come only from `config`: PULUMI_CONFIG* would otherwise fill in keys a test left out on purpose.
    for key in [k for k in os.environ if k.startswith("PULUMI_CONFIG")]:
        del os.environ[key]
    wire_config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    pulumi.runtime.set_all_config(wire_config, [])

    cloud = MockCloud(
        project=project,
        stack=stack,
        stack_outputs=options.stack_outputs,
        secret_marker=options.secret_marker,
        caller_principal_type=options.caller_principal_type,
        caller_object_id=options.caller_object_id,
        caller_token_seconds_left=options.caller_token_seconds_left,
        caller_groups=options.caller_groups if options.caller_groups is not None else _deployer_groups(config, project),
        soft_deleted_key_vaults=options.soft_deleted_key_vaults,
        random_seed=options.random_seed,
        registry_models=options.registry_models,
        dry_run=dry_run,
    )
    monitor = RecordingMonitor(cloud)
    pulumi.runtime.set_mocks(cloud, project=project, stack=stack, preview=dry_run, monitor=monitor)

    outputs: dict[str, Any] = {}
    secret_outputs: list[str] = []

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def _run() -> Any:
        if callable(program):
            program()
        else:
            runpy.run_path(str(program), run_name="__main__")
        root = pulumi.runtime.settings.get_root_resource()
        exports = dict(getattr(root, "outputs", {}) or {})

        async def resolve() -> None:
            for key, value in exports.items():
                out = pulumi.Output.from_input(value)
                outputs[key] = unwrap_secrets(await out.future())
                if await out.is_secret():
                    secret_outputs.append(key)

        return resolve()

    _run()
    return ProgramRun(
        project=project,
        stack=stack,
        resources=list(monitor.registrations),
        outputs=outputs,
        secret_outputs=sorted(secret_outputs),
        invokes=list(cloud.invokes),
        stack_urn=monitor.stack_urn,
    )


def _deployer_groups(config: Mapping[str, Any], project: str) -> tuple[str, ...]:
    """The object ids of the groups the stack file's `deployers` name."""
    raw = config.get(f"{project}:deployers")
    listed = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(listed, list):
        return ()
    return tuple(str(d.get("objectId")) for d in listed if isinstance(d, dict) and d.get("type") == "Group")
