"""The demo's canary releases: a bad version aborted by the analysis and rolled back, then a good one promoted.

After version 2 serves, version 3 (`demo/canary_models/failing.py`: it fails half its predictions once armed) is
promoted through the real loop, built like every version, and started beside version 2. The controller's loop
(`localrun.canary.run_canary`) then steps the real weighted proxy through staging's steps, scaled down, while the
local Prometheus scrapes both servers with their pod-template hashes (the image digests here) and the real judge
measures the canary. The analysis aborts version 3 and traffic goes back to version 2. Then what the release does
in CI on an abort runs as the product's own commands: the deploy's `release.canary_aborted` records the abort on
version 3 in the registry and chooses the revert (to the version the registry says staging ran, which the deploy's
`release.record_deployment` wrote after version 2); the called rollback.yml's `release.rollback` pushes the revert
to the demo's "GitHub" repository and opens its pull request on the GitHub stand-in; a reviewer merges it, after
which `release.promote` refuses version 3. Version 4 then goes through every step and is promoted (and recorded);
versions 2 and 3 are stopped.

Durations are staging's `serving.canary` scaled down (`PAUSE_SECONDS`, `MEASUREMENT_SECONDS`): a 5-minute pause
per step would make the demo half an hour longer. The traffic is the model's input example at a steady rate (the
synthetic traffic staging sends), higher than staging's `syntheticRps` so that the short steps hold enough requests.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import httpx

from demo.context import MODEL, REPOSITORY, Loop, LoopFailedError
from demo.wine_model import FAILING_ARMED_FILE, FAILING_SHARE
from localrun import podman as pm
from localrun.canary import ABORTED, PROMOTED, CanaryResult, Traffic, run_canary
from localrun.monitoring import canary_prometheus, port_of
from localrun.processes import LOOPBACK
from localrun.weighted_proxy import CANARY, SIDE_HEADER, STABLE, WeightedProxy
from monitoring.analysis import canary_checks
from program import stack_args
from stacks.files import load_stack_config
from stacks.identifiers import kubernetes_name
from stacks.settings import pinned_model

STACK = "staging"
ROLLBACK = "rollback.yml"  # the workflow the deploy calls after an aborted canary (release/canary_aborted.py)
PAUSE_SECONDS = 20  # staging: 5m
MEASUREMENT_SECONDS = 5  # staging: 1m
# Several 1 s scrapes after the canary's first requests, so that a rate over them exists (as tests/localrun/).
INITIAL_DELAY_SECONDS = 8.0
REQUESTS_PER_SECOND = 20.0
SHARE_FAILING = "0.5"
# Inside the container: its /tmp is the pod's emptyDir, the only writable path.
ARMED_IN_CONTAINER = "/tmp/bad-version-armed"  # noqa: S108 (a path inside the container, not here)
REQUESTS_AFTER = 100  # sent through the proxy once the release ended, to show where traffic goes


class CanarySteps:
    """Runs both canary releases through the loop `loop` (which owns every process they start)."""

    def __init__(self, loop: Loop) -> None:
        settings = load_stack_config(loop.worktree, STACK).settings()
        self.loop = loop
        self.monitoring = settings.monitoring
        self.release = dataclasses.replace(
            stack_args.canary_release(settings.serving.canary),
            pause_seconds=PAUSE_SECONDS,
            measurement_interval_seconds=MEASUREMENT_SECONDS,
        )
        self.app = kubernetes_name(MODEL)  # the namespace the model's pods run in
        self.lines: list[str] = []

    # --- one canary release ---------------------------------------------------------------------------------

    def pod_hash(self, version: int) -> str:
        """The label the servers' series carry for `version`: its image digest's first hex digits (what differs
        between two pod templates), or the version's name when it runs from the virtualenv."""
        if self.loop.images is not None:
            return self.loop.images.digest(version).removeprefix("sha256:")[:10]
        return f"v{version}"

    def release_canary(self, version: int, *, bad: bool) -> tuple[CanaryResult, int, collections.Counter[str]]:
        """Start `version` beside the stable version and release it as a canary; returns the result, the stable
        version, and where the requests sent after the release went (`<side> <status>` -> count)."""
        loop = self.loop
        stable = max(loop.serving)
        env: dict[str, str] | None = None
        armed = ARMED_IN_CONTAINER if loop.images is not None else str(loop.workdir / "bad-version-armed")
        if bad:
            env = {FAILING_ARMED_FILE: armed, FAILING_SHARE: SHARE_FAILING}
        with loop.step(f"start version {version} beside version {stable} (the canary's pods), smoke-test") as detail:
            loop.deploy(version, env=env)
            detail.append(f"version {version} at {loop.serving[version][1]}; version {stable} still takes all traffic")
            if bad:
                self._arm(version, armed)
                detail.append(f"armed: from now on it fails {float(SHARE_FAILING):.0%} of its predictions")
        stable_hash, canary_hash = self.pod_hash(stable), self.pod_hash(version)
        stable_address, canary_address = _address(loop.serving[stable][1]), _address(loop.serving[version][1])
        checks = canary_checks(self.monitoring, self.app, canary_hash, stable_hash)
        name = (
            f"release version {version} as a canary: {self.release.shares}, {self.release.pause_seconds}s a step, "
            f"judged every {self.release.measurement_interval_seconds}s"
        )
        with loop.step(name) as detail:
            work = loop.workdir / f"canary-v{version}"
            prometheus = loop.start(
                canary_prometheus(
                    work / "prometheus",
                    namespace=self.app,
                    targets={stable_hash: stable_address, canary_hash: canary_address},
                ),
                timeout=60,
            )
            prometheus_url = f"http://{LOOPBACK}:{port_of(prometheus)}"
            try:
                with WeightedProxy(work / "proxy", stable=stable_address, canary=canary_address) as proxy:
                    loop.out(
                        f"  nginx {proxy.url}: stable v{stable} ({stable_hash}), canary v{version} ({canary_hash}); "
                        f"Prometheus {prometheus_url}; checks: {', '.join(check.name for check in checks)}"
                    )
                    result = run_canary(
                        proxy=proxy,
                        prometheus_url=prometheus_url,
                        monitoring=self.monitoring,
                        app=self.app,
                        stable_hash=stable_hash,
                        canary_hash=canary_hash,
                        release=self.release,
                        traffic=Traffic(proxy.url, [self._body(stable)], requests_per_second=REQUESTS_PER_SECOND),
                        initial_delay_seconds=INITIAL_DELAY_SECONDS,
                        report=lambda line: loop.out(f"  {line}"),
                    )
                    after = self._requests_through(proxy.url, self._body(stable))
            finally:
                loop.retire(prometheus)
            for step in result.steps:
                served = ", ".join(f"{side} {status}: {count}" for (side, status), count in sorted(step.served.items()))
                loop.out(
                    f"  step {step.weight}%: {step.started_seconds:.1f}-{step.ended_seconds:.1f}s "
                    f"(weight live at {step.weight_set_seconds:.1f}s); served {served}"
                )
            passed = sum(1 for measurement in result.measurements if measurement.passed)
            loop.out(f"  measurements: {passed} of {len(result.measurements)} passed")
            detail.append(f"{result.outcome} after {result.seconds_total:.1f}s")
        if result.outcome == ABORTED:
            verdict = result.failed_verdict
            if verdict is None:
                raise LoopFailedError(f"version {version} was aborted without a failed check")
            bound = next(check.bound for check in checks if check.name == verdict.check)
            loop.out(
                f"  version {version} ABORTED {result.seconds_to_abort:.1f}s after its canary started: "
                f"check {verdict.check} measured {verdict.value} (bound {bound:g})"
            )
        return result, stable, after

    def _arm(self, version: int, armed: str) -> None:
        """The bad version starts failing only now: its warm-up and the smoke test passed, as a version that breaks
        under real traffic would."""
        process, _ = self.loop.serving[version]
        if isinstance(process, pm.ContainerProcess):
            pm.podman("exec", process.container_name, "touch", armed, timeout=60)
        else:
            Path(armed).touch()

    def _body(self, version: int) -> bytes:
        return (
            self.loop.workdir / "images" / f"{MODEL}-v{version}" / "model" / "serving_input_example.json"
        ).read_bytes()

    def _requests_through(self, proxy_url: str, body: bytes) -> collections.Counter[str]:
        sides: collections.Counter[str] = collections.Counter()
        with httpx.Client(base_url=proxy_url, timeout=30) as client:
            for _ in range(REQUESTS_AFTER):
                answer = client.post("/invocations", content=body, headers={"Content-Type": "application/json"})
                sides[f"{answer.headers.get(SIDE_HEADER)} {answer.status_code}"] += 1
        return sides

    # --- the bad version: aborted, recorded, rolled back ----------------------------------------------------

    def bad_version(self, version: int) -> None:
        loop = self.loop
        payload = loop.promote(version, bad=True)
        result, stable, after = self.release_canary(version, bad=True)
        if result.outcome != ABORTED or result.failed_verdict is None or result.seconds_to_abort is None:
            raise LoopFailedError(f"version {version} was {result.outcome}; the analysis should have aborted it")
        if after != {f"{STABLE} 200": REQUESTS_AFTER}:
            raise LoopFailedError(f"after the abort the proxy still sent traffic elsewhere than v{stable}: {after}")
        loop.out(
            f"  traffic back to version {stable}: {REQUESTS_AFTER} of {REQUESTS_AFTER} requests after the abort "
            f"answered by the stable side (v{stable}) with 200"
        )
        process, _ = loop.serving.pop(version)
        loop.retire(process)
        verdict = result.failed_verdict
        reason = (
            f"canary of v{version} aborted by the analysis: {verdict.check} measured {verdict.value}, "
            f"{result.seconds_to_abort:.1f} s after the canary started"
        )
        self.lines.append(
            f"v{version}: aborted {result.seconds_to_abort:.1f}s after its canary started by {verdict.check} "
            f"(measured {verdict.value}); traffic back to v{stable}"
        )
        chosen = self._record_abort(version, stable, self.pod_hash(version), reason)
        self._revert(version, stable, reason, chosen)
        self._not_proposed_again(version, payload)

    def github_env(self) -> dict[str, str]:
        """What a job of the release workflows has: the token, the repository, the API (the stand-in)."""
        ci = self.loop.servers.ci
        assert ci is not None
        return {
            "GITHUB_TOKEN": self.loop.ci_token,
            "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_API_URL": ci.url,
            # Outside Actions: no job summary or step outputs to append to.
            "GITHUB_STEP_SUMMARY": "",
            "GITHUB_OUTPUT": "",
        }

    def _record_abort(self, version: int, stable: int, canary_hash: str, reason: str) -> dict[str, str]:
        """The deploy's step after an aborted canary: `release.canary_aborted` tags the version in the registry and
        chooses the revert, told what the stable and canary sides served as the wait reads it from their
        ReplicaSets (here: the versions behind the proxy); returns its step outputs (`revert-to`, `revert-from`,
        `revert-reason`, or none)."""
        from mlflow import MlflowClient

        loop = self.loop
        with loop.step(f"on abort (CI): record the abort on version {version} in the registry, choose the revert"):
            outputs = loop.workdir / f"canary-v{version}" / "github-output"
            out = loop.run_tool(
                "-m", "release.canary_aborted", "--stack", STACK, f"--reason={reason}",
                f"--canary-hash={canary_hash}", "--project-dir", str(loop.worktree),
                f"--stable-model={MODEL}", f"--stable-version={stable}",
                f"--canary-model={MODEL}", f"--canary-version={version}",
                "--tracking-uri", loop.tracking_uri, "--outputs", str(outputs),
            )  # fmt: skip
            loop.out("\n".join("  │ " + line for line in out.rstrip().splitlines()))
            tags = dict(MlflowClient(loop.tracking_uri).get_model_version(MODEL, str(version)).tags or {})
            recorded = sorted(key for key in tags if key.startswith("aborted_"))
            if tags.get(f"aborted_{STACK}_reason") != reason:
                raise LoopFailedError(f"version {version}'s tags do not carry the abort's reason: {tags}")
            loop.out(f"  registry: {MODEL} v{version} tagged {', '.join(recorded)}")
            lines = outputs.read_text().splitlines() if outputs.is_file() else []
            chosen = dict(line.split("=", 1) for line in lines if "=" in line)
            loop.out(f"  step outputs: {json.dumps(chosen)}")
            return chosen

    def _revert(self, version: int, stable: int, reason: str, chosen: dict[str, str]) -> None:
        loop = self.loop
        ci = loop.servers.ci
        assert ci is not None
        inputs = {"stack": STACK, "version": chosen.get("revert-to", ""), "digest": ""}
        inputs |= {"from-version": chosen.get("revert-from", ""), "reason": chosen.get("revert-reason", "")}
        if (inputs["version"], inputs["from-version"]) != (str(stable), str(version)) or reason not in inputs["reason"]:
            raise LoopFailedError(f"the revert chosen is {chosen}, not version {version} back to {stable}")
        with loop.step(f"{ROLLBACK} (release.rollback): the revert pull request reaches the GitHub stand-in"):
            # The workflow's "Propose the revert" step with the inputs the deploy's revert job passes; it runs on
            # the branch the deploy ran on (GITHUB_REF_NAME).
            argv = ["--stack", inputs["stack"], "--to-version", inputs["version"], "--digest", inputs["digest"]]
            argv += ["--from-version", inputs["from-version"], f"--reason={inputs['reason']}"]
            env = {**self.github_env(), "GITHUB_REF_NAME": loop.base_branch, "MLFLOW_TRACKING_URI": loop.tracking_uri}
            out = loop.run_tool("-m", "release.rollback", *argv, "--repo-dir", str(loop.worktree), env=env)
            loop.out("\n".join("  │ " + line for line in out.rstrip().splitlines()))
            reverts = [pull for pull in ci.pulls.values() if pull["head"]["ref"].startswith(f"rollback/{STACK}/")]
            if not reverts:
                raise LoopFailedError("release.rollback opened no pull request on the GitHub stand-in")
            pull = max(reverts, key=lambda found: int(found["number"]))
            branch = str(pull["head"]["ref"])
            pushed = loop.git("ls-remote", "origin", f"refs/heads/{branch}")
            if not pushed:
                raise LoopFailedError(f"{branch} was not pushed to the demo's GitHub repository {loop.remote}")
            loop.out(f"  pull request #{pull['number']} on the GitHub stand-in: {pull['title']!r} ({pull['html_url']})")
            if reason not in str(pull["body"]):
                raise LoopFailedError(f"the revert pull request's body does not carry the reason:\n{pull['body']}")
            loop.out(f"  its body carries the reason: {reason!r}")
            loop.out(f"  branch {branch} pushed to {loop.remote} at {pushed.split()[0][:12]}")

        with loop.step(f"a reviewer merges the revert: staging pins version {stable} again") as detail:
            ci.merge(int(pull["number"]))
            loop.git("checkout", "-q", loop.base_branch)
            loop.git("merge", "-q", "--ff-only", branch)
            loop.git("push", "-q", "origin", loop.base_branch)
            pinned = loop.pinned_version()
            if pinned != stable:
                raise LoopFailedError(f"staging pins version {pinned} after the revert, not {stable}")
            listed = loop.worktree / "release" / "rolled-back" / f"{STACK}.json"
            rolled_back = json.loads(listed.read_text()) if listed.is_file() else {}
            if version not in rolled_back.get(MODEL, []):
                raise LoopFailedError(
                    f"release/rolled-back/{STACK}.json does not list version {version}: {rolled_back}"
                )
            loop.out(f"  release/rolled-back/{STACK}.json: {json.dumps(rolled_back)}")
            digest = pinned_model(load_stack_config(loop.worktree, STACK).settings()).image_digest
            loop.out(f"  Pulumi.{STACK}.yaml pins v{pinned}, image {digest or '(rebuilt on deploy: no digest known)'}")
            detail.append(f"#{pull['number']} merged; staging pins v{pinned}; v{version} listed as rolled back")

    def _not_proposed_again(self, version: int, payload: dict[str, Any]) -> None:
        loop = self.loop
        with loop.step(f"promoting version {version} again is refused (the same dispatch, redelivered)") as detail:
            head = loop.git("rev-parse", "HEAD")
            out = loop.run_tool(
                "-m", "release.promote", "--payload", json.dumps(payload), "--repo-dir", str(loop.worktree),
                "--no-push", "--tracking-uri", loop.tracking_uri,
            )  # fmt: skip
            first = out.strip().splitlines()[0] if out.strip() else "(no output)"
            loop.out(f"  │ {first}")
            if not first.startswith("nothing proposed") or loop.git("rev-parse", "HEAD") != head:
                raise LoopFailedError(f"release.promote proposed version {version} again after its rollback:\n{out}")
            detail.append(first[:160])

    # --- the good version: promoted -------------------------------------------------------------------------

    def good_version(self, version: int) -> None:
        loop = self.loop
        loop.promote(version)
        result, stable, after = self.release_canary(version, bad=False)
        if result.outcome != PROMOTED:
            verdict = result.failed_verdict
            raise LoopFailedError(
                f"version {version} was aborted by {verdict.check if verdict else '?'} "
                f"({verdict.line if verdict else ''})"
            )
        if after != {f"{CANARY} 200": REQUESTS_AFTER}:
            raise LoopFailedError(f"after the promotion the proxy did not send every request to v{version}: {after}")
        process, _ = loop.serving.pop(stable)
        loop.retire(process)
        loop.record_deployment(version)
        steps = "; ".join(f"{step.weight}% at {step.weight_set_seconds:.1f}s" for step in result.steps)
        loop.out(
            f"  version {version} PROMOTED (weight 100) {result.seconds_total:.1f}s after its canary started "
            f"({steps}); version {stable} stopped; {REQUESTS_AFTER} of {REQUESTS_AFTER} requests answered by v{version}"
        )
        self.lines.append(
            f"v{version}: promoted {result.seconds_total:.1f}s after its canary started ({steps}, 100% at the end); "
            f"v{stable} stopped"
        )


def _address(url: str) -> str:
    """`127.0.0.1:<port>` of an `http://127.0.0.1:<port>/...` URL."""
    return re.sub(r"^https?://", "", url).split("/", 1)[0]


def canary_releases(loop: Loop, *, bad: int = 3, good: int = 4) -> list[str]:
    """Version `bad` aborted and rolled back, then version `good` promoted; returns the summary lines."""
    steps = CanarySteps(loop)
    steps.bad_version(bad)
    steps.good_version(good)
    return steps.lines
