"""Offline diff: between two stacks, or between a stack at a git ref and the working tree.

A diff compares two preview documents (see `offline.preview`): config key by key, then resources by (type, name),
input by input and option by option. Items of a list are matched by their natural name where they have one (an
environment variable, a container, a port, an alert rule), so a change reads as `env[name=MODEL_VERSION].value`,
not as a position. Against a base, each change is labelled with what it does in the cloud, so a pin bump reads as
"the image is rebuilt, the canary takes 10% -> 50% -> 100%, nothing else", and a replacement names the input
that forces it.
Between two stacks (`diff staging prod`) it is a comparison: only in one, only in the other, differs.

How a value is shown (never cut before the change; identifiers whole; line diffs) is in `offline.diff_values`.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from offline.diff_values import render_pair
from offline.isolation import project_packages, run_module_in_tree
from offline.mockcloud import OWN_NAME_INPUT

IMAGE_TYPE = "docker-build:index:Image"
DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
ROLLOUT_TYPE = "kubernetes:argoproj.io/v1alpha1:Rollout"
ANALYSIS_TEMPLATE_TYPE = "kubernetes:argoproj.io/v1alpha1:AnalysisTemplate"
JOB_TYPE = "kubernetes:batch/v1:Job"
_OPTION_KEYS = (
    "protect",
    "provider",
    "depends_on",
    "ignore_changes",
    "replace_on_changes",
    "delete_before_replace",
    "retain_on_delete",
    "secret_inputs",
    "parent",
)

# GitHub refuses a comment body over 65,536 characters ("Body is too long (maximum is 65536 characters)",
# github.com/danger/danger/issues/424). The release tools add their own text around the diff and cut at 60,000
# (release/pr_comment.py, release/proposal.py): the diff stays under this, so they never have to cut it.
MARKDOWN_BUDGET = 55_000


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested inputs as dotted paths (`spec.template.spec.containers[0].image`) to leaf values."""
    if isinstance(value, dict):
        if not value and prefix:
            return {prefix: {}}
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        if not value and prefix:
            return {prefix: []}
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any


# --- comparing values ---------------------------------------------------------------------------------------------

# The natural name of a list's items, tried in order: the first key (or keys) every item on both sides has, with
# scalar values unique within each side, names them. Kubernetes merges env, containers, ports and volumes by name;
# Prometheus rules are named by `alert` (or `record`); a role assignment by role and scope. An item that is nothing
# but an id (`{"actionGroupId": ...}`) is compared by position, so a changed id reads as one change, not two.
_ITEM_KEYS: tuple[tuple[str, ...], ...] = (
    ("name",),
    ("alert",),
    ("record",),
    ("roleDefinitionId", "scope"),
    ("role", "scope"),
    ("taskKey",),
    ("mountPath",),
    ("topologyKey",),
    ("port", "protocol"),
)


def _item_key(*sides: list[Any]) -> tuple[str, ...] | None:
    items = [item for side in sides for item in side]
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    for keys in _ITEM_KEYS:
        if not all(all(isinstance(item.get(k), (str, int)) for k in keys) for item in items):
            continue
        if all(len({tuple(item[k] for k in keys) for item in side}) == len(side) for side in sides):
            return keys
    return None


def _label(item: dict[str, Any], keys: tuple[str, ...]) -> str:
    return ",".join(f"{k}={item[k]}" for k in keys)


def _is_scalar_list(value: Any) -> bool:
    return isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value)


def _compare(before: Any, after: Any, path: str) -> list[FieldChange]:
    """The changes between two values, as leaves a reviewer can read.

    An input set to null and one left out mean the same to the engine: neither is a change. Objects are compared
    key by key; lists of named items item by item, by name; a list of scalars, or one that appears or goes whole,
    as one value; any other list by position.
    """
    if before == after or (before is None and after is None):
        return []
    # An object that appears or goes whole still reads key by key (`model.name`, `model.version`).
    if isinstance(before, dict) and after is None and before:
        after = {}
    if isinstance(after, dict) and before is None and after:
        before = {}
    if isinstance(before, dict) and isinstance(after, dict) and (before or after):
        out: list[FieldChange] = []
        for key in list(before) + [k for k in after if k not in before]:
            out += _compare(before.get(key), after.get(key), f"{path}.{key}" if path else str(key))
        return out
    if isinstance(before, list) and isinstance(after, list) and before and after:
        if _is_scalar_list(before) and _is_scalar_list(after):
            return [FieldChange(path, before, after)]
        keys = _item_key(before, after)
        if keys is not None:
            old = {_label(item, keys): item for item in before}
            new = {_label(item, keys): item for item in after}
            out = []
            for label in list(old) + [k for k in new if k not in old]:
                out += _item(old.get(label), new.get(label), f"{path}[{label}]")
            return out
        out = []
        for i in range(max(len(before), len(after))):
            out += _item(before[i] if i < len(before) else None, after[i] if i < len(after) else None, f"{path}[{i}]")
        return out
    return [FieldChange(path, before, after)]


def _item(before: Any, after: Any, path: str) -> list[FieldChange]:
    """A list item: one that is added or removed is one value (the whole env var, the whole rule)."""
    if before is None or after is None:
        return [] if before == after else [FieldChange(path, before, after)]
    return _compare(before, after, path)


def _changes(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[FieldChange]:
    return sorted(_compare(before, after, prefix), key=lambda c: c.path)


# --- what forces a replacement ------------------------------------------------------------------------------------

# pulumi-kubernetes replaces an object when one of these changes (provider/pkg/provider/diff.go, `forceNew`):
# the name and namespace of any object, and per kind the fields Kubernetes will not update in place.
_KUBERNETES_FORCE_NEW: dict[str, tuple[str, ...]] = {
    "apps/v1:Deployment": ("spec.selector",),
    "apps/v1:DaemonSet": ("spec.selector",),
    "apps/v1:StatefulSet": (
        "spec.podManagementPolicy",
        "spec.revisionHistoryLimit",
        "spec.selector",
        "spec.serviceName",
        "spec.volumeClaimTemplates",
    ),
    "batch/v1:Job": ("spec.completions", "spec.parallelism", "spec.selector", "spec.template"),
    "core/v1:ConfigMap": ("binaryData", "data"),
    "core/v1:Secret": ("type", "stringData", "data"),
    "core/v1:Service": ("spec.clusterIP",),
    "core/v1:PersistentVolumeClaim": (
        "spec.accessModes",
        "spec.selector",
        "spec.storageClassName",
        "spec.volumeName",
    ),
    "rbac.authorization.k8s.io/v1:RoleBinding": ("roleRef",),
    "rbac.authorization.k8s.io/v1:ClusterRoleBinding": ("roleRef",),
    "storage.k8s.io/v1:StorageClass": ("parameters", "provisioner"),
}
_KUBERNETES_METADATA_FORCE_NEW = ("metadata.name", "metadata.namespace")

# pulumi-azure-native replaces a resource when a parameter of its URL path changes ("Any property from the path of
# a resource URL must cause replacement", github.com/pulumi/pulumi-azure-native/issues/77): the resource group, the
# resource's own name (as the mock cloud names each type, `offline.mockcloud`) and its parent's name. A role
# assignment's path is `{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}`
# (learn.microsoft.com/rest/api/authorization/role-assignments/create).
_AZURE_PARENT_NAMES = ("resourceName", "vaultName", "accountName", "registryName")
# A data collection rule association's is `{resourceUri}/providers/Microsoft.Insights/dataCollectionRuleAssociations/
# {associationName}` (learn.microsoft.com/rest/api/monitor/data-collection-rule-associations/create).
_AZURE_EXTRA_PATH = {
    "azure-native:authorization:RoleAssignment": ("scope", "roleAssignmentName"),
    "azure-native:monitor:DataCollectionRuleAssociation": ("resourceUri", "associationName"),
}

# And the properties the provider marks force-new by hand for the types this program declares (pulumi-azure-native
# provider/pkg/gen/replacement.go, `forceNewMap`), as input paths.
_AKS_NETWORK_FORCE_NEW = (
    "serviceCidr",
    "serviceCidrs",
    "dnsServiceIP",
    "networkMode",
    "networkPlugin",
    "networkPluginMode",
    "podCidr",
    "networkDataplane",
    "networkPolicy",
    "outboundType",
)
_AZURE_FORCE_NEW: dict[str, tuple[str, ...]] = {
    "azure-native:authorization:RoleAssignment": ("principalId", "scope"),
    "azure-native:containerservice:ManagedCluster": (
        "diskEncryptionSetID",
        "dnsPrefix",
        "fqdnSubdomain",
        "linuxProfile",
        "location",
        "nodeResourceGroup",
        "windowsProfile",
        *(f"networkProfile.{p}" for p in _AKS_NETWORK_FORCE_NEW),
    ),
    "azure-native:containerservice:AgentPool": ("gpuInstanceProfile", "vmSize", "networkProfile.nodePublicIPTags"),
    "azure-native:resources:ResourceGroup": ("location",),
    "azure-native:storage:StorageAccount": ("isHnsEnabled", "location"),
    "azure-native:web:WebApp": ("location", "kind"),
}

# What a reviewer must know when one of these is replaced, beyond "replaced".
_REPLACEMENT_CONSEQUENCE = {
    # A new cluster means a new kubeconfig, and pulumi-kubernetes replaces every object behind a provider whose
    # cluster changes (its DiffConfig; ../shared/reference/pulumi-preview-semantics.md).
    "azure-native:containerservice:ManagedCluster": "a new cluster, every Kubernetes object on it created again",
    "azure-native:containerservice:AgentPool": "a new node pool, its pods rescheduled",
    "azure-native:keyvault:Vault": "a new, empty vault, its secrets created again in it",
    "azure-native:containerregistry:Registry": "a new, empty registry, every image pushed again",
    "azure-native:storage:StorageAccount": "a new, empty storage account, its queued messages and tables lost",
    "azure-native:databricks:Workspace": "a new, empty Databricks workspace",
    "pulumi:providers:kubernetes": "every object through this provider is replaced",
}


def force_new_paths(resource_type: str) -> tuple[str, ...]:
    """The input paths whose change makes the provider replace a resource of `resource_type`, as far as known."""
    if resource_type.startswith("kubernetes:"):
        kind = resource_type.removeprefix("kubernetes:")
        return _KUBERNETES_METADATA_FORCE_NEW + _KUBERNETES_FORCE_NEW.get(kind, ())
    if resource_type.startswith("azure-native:"):
        own = OWN_NAME_INPUT.get(resource_type)
        names = ("resourceGroupName", *([own] if own else []), *_AZURE_PARENT_NAMES)
        extra = _AZURE_EXTRA_PATH.get(resource_type, ()) + _AZURE_FORCE_NEW.get(resource_type, ())
        return tuple(dict.fromkeys(names + extra))
    return ()


_TOKEN = re.compile(r"\[[^\]]*\]|[^.\[\]]+")


def _values_at(value: Any, tokens: Sequence[str]) -> list[Any]:
    """The values at a property path (`spec.containers[*].image`, `[0]`, `["key"]`; `*` is any key or item), as
    Pulumi's property paths write them; a missing one as None."""
    if not tokens:
        return [value]
    head, rest = tokens[0], tokens[1:]
    if head in ("*", "[*]"):
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
        return [v for item in items for v in _values_at(item, rest)]
    index = re.fullmatch(r"\[(\d+)\]", head)
    if index is not None:
        i = int(index.group(1))
        return _values_at(value[i] if isinstance(value, list) and i < len(value) else None, rest)
    if isinstance(value, dict):
        return _values_at(value.get(head.strip('[]"')), rest)
    return _values_at(None, rest) if rest else [None]


def _forced_by(resource_type: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The inputs whose change forces a replacement: the provider's own rules, and the program's
    `replace_on_changes` (pulumi.com/docs/iac/concepts/resources/options/replaceonchanges/)."""
    patterns = list(force_new_paths(resource_type)) + list(after.get("replace_on_changes") or [])
    forced = []
    for pattern in dict.fromkeys(patterns):
        tokens = _TOKEN.findall(pattern)
        if _values_at(before["inputs"], tokens) != _values_at(after["inputs"], tokens):
            forced.append(pattern)
    return forced


# --- the diff -----------------------------------------------------------------------------------------------------


@dataclass
class ResourceChange:
    type: str
    name: str
    kind: str  # "add" | "delete" | "update" | "replace"
    fields: list[FieldChange] = field(default_factory=list)
    replaced_by: list[str] = field(default_factory=list)  # the inputs that force a replacement
    delete_before_replace: bool = False
    comparison: bool = False  # between two stacks: "only in ..." / "differs", not what an update does
    pushes: bool = True  # an image build: whether it pushes (the SBOM's build writes a local file only)
    release: str = ""  # a Rollout whose pods change: how the new version takes traffic, and what judges it

    @property
    def forced(self) -> str:
        """Which inputs force the replacement, for a reader: "" unless replaced."""
        return f"forced by {', '.join(f'`{p}`' for p in self.replaced_by)}" if self.replaced_by else ""

    @property
    def impact(self) -> str:
        """What the change does when applied, in a reviewer's words (between two stacks: where it differs).

        Never holds ": " (the release tools read the impact as what follows the last ": " of a listing line)."""
        if self.comparison:
            return {"add": "only in {after}", "delete": "only in {before}"}.get(self.kind, "differs")
        if self.kind in ("add", "delete"):
            return {"add": "created", "delete": "deleted"}[self.kind]
        if self.kind == "replace":
            if self.type == JOB_TYPE:  # the per-version smoke test is replaced by design: that is how it runs again
                return "smoke-test job runs again"
            # By default the replacement is created before the old one is deleted; `delete_before_replace` turns
            # that around (pulumi.com/docs/iac/concepts/resources/options/deletebeforereplace/).
            text = "replaced"
            if self.delete_before_replace:
                text = "replaced, deleted first (down until the new one is up)"
            consequence = _REPLACEMENT_CONSEQUENCE.get(self.type)
            return f"{text} ({consequence})" if consequence else text
        paths = [f.path for f in self.fields]
        if self.type == IMAGE_TYPE:
            return "image rebuilt and pushed" if self.pushes else "rebuilt, nothing pushed"
        if self.type == DEPLOYMENT_TYPE and any(p.startswith("inputs.spec.template") for p in paths):
            return "deployment rolls out"
        if self.type == ROLLOUT_TYPE and self.release and any(p.startswith("inputs.spec.template") for p in paths):
            return self.release
        if self.type == JOB_TYPE:
            return "smoke-test job runs again"
        if self.type == ANALYSIS_TEMPLATE_TYPE:  # read by the controller when a release starts, not before
            return "updated, used by the next release"
        if all(p.startswith("options.") for p in paths):
            return "options only (no cloud change)"
        return "updated in place"


@dataclass
class StackDiff:
    before_label: str
    after_label: str
    config: list[FieldChange]
    resources: list[ResourceChange]
    outputs: list[FieldChange]
    unchanged: int
    comparison: bool = False  # two stacks side by side, not a change to one stack

    def impact(self, change: ResourceChange) -> str:
        return change.impact.format(before=self.before_label, after=self.after_label)

    def as_json(self) -> dict[str, Any]:
        return {
            "before": self.before_label,
            "after": self.after_label,
            "comparison": self.comparison,
            "config": [vars(c) for c in self.config],
            "resources": [
                {
                    "type": r.type,
                    "name": r.name,
                    "kind": r.kind,
                    "impact": self.impact(r),
                    "replaced_by": r.replaced_by,
                    "fields": [vars(f) for f in r.fields],
                }
                for r in self.resources
            ],
            "outputs": [vars(c) for c in self.outputs],
            "unchanged": self.unchanged,
            "summary": self.summary(),
        }

    def summary(self) -> str:
        if not self.resources and not self.config:
            return "no differences" if self.comparison else "no changes"
        counts = {k: sum(1 for r in self.resources if r.kind == k) for k in ("add", "update", "replace", "delete")}
        if self.comparison:
            return (
                f"{counts['delete']} only in {self.before_label}, {counts['add']} only in {self.after_label}, "
                f"{counts['update']} differ; {self.unchanged} the same"
            )
        impacts = sorted({self.impact(r) for r in self.resources if r.kind in ("update", "replace")})
        text = f"{counts['update']} to change, {counts['add']} to add, {counts['delete']} to delete"
        if counts["replace"]:
            text = f"{counts['replace']} to replace, {text}"
        if impacts:
            text += f" ({'; '.join(impacts)})"
        return f"{text}; {self.unchanged} unchanged"


def diff_documents(
    before: dict[str, Any], after: dict[str, Any], before_label: str, after_label: str, *, comparison: bool = False
) -> StackDiff:
    """Field-by-field differences between two preview documents.

    `comparison`: the documents are two stacks side by side (nothing is replaced or rolled out between them).
    """
    config = _changes(before["config"], after["config"])
    old = {(r["type"], r["name"]): r for r in before["resources"]}
    new = {(r["type"], r["name"]): r for r in after["resources"]}
    changes: list[ResourceChange] = []
    unchanged = 0
    for key in sorted(set(old) | set(new)):
        if key not in old or key not in new:
            changes.append(ResourceChange(key[0], key[1], "add" if key not in old else "delete", comparison=comparison))
            continue
        a, b = old[key], new[key]
        fields = _changes(a["inputs"], b["inputs"], "inputs")
        fields += _changes({k: a[k] for k in _OPTION_KEYS}, {k: b[k] for k in _OPTION_KEYS}, "options")
        if not fields:
            unchanged += 1
            continue
        forced = [] if comparison else _forced_by(key[0], a, b)
        changes.append(
            ResourceChange(
                key[0],
                key[1],
                "replace" if forced else "update",
                fields,
                replaced_by=[f"inputs.{p}" for p in forced],
                delete_before_replace=bool(b.get("delete_before_replace")),
                comparison=comparison,
                pushes=key[0] != IMAGE_TYPE or bool(b["inputs"].get("push")),
                release=_release(b, after["resources"]) if key[0] == ROLLOUT_TYPE else "",
            )
        )
    outputs = _changes(before["outputs"], after["outputs"])
    return StackDiff(before_label, after_label, config, changes, outputs, unchanged, comparison)


def _release(rollout: dict[str, Any], resources: list[dict[str, Any]]) -> str:
    """`canary 10% -> 50% -> 100%, analysis error-ratio, ready` for a Rollout's canary strategy, with the metrics
    of the AnalysisTemplates its background analysis names (no ": ", see `ResourceChange.impact`)."""
    canary = rollout["inputs"].get("spec", {}).get("strategy", {}).get("canary")
    if not isinstance(canary, dict):
        return ""
    shares = [step["setWeight"] for step in canary.get("steps", []) if isinstance(step, dict) and "setWeight" in step]
    text = "canary " + " -> ".join(f"{share:g}%" for share in [*shares, 100])  # the wire's 10.0 reads as 10%
    named = {t.get("templateName") for t in canary.get("analysis", {}).get("templates", []) if isinstance(t, dict)}
    metrics = [
        str(metric.get("name"))
        for resource in resources
        if resource["type"] == ANALYSIS_TEMPLATE_TYPE and resource["inputs"].get("metadata", {}).get("name") in named
        for metric in resource["inputs"].get("spec", {}).get("metrics", [])
    ]
    return f"{text}, analysis {', '.join(metrics)}" if metrics else f"{text}, no analysis"


# --- rendering ----------------------------------------------------------------------------------------------------

_MARKS = {"add": "+", "delete": "-", "update": "~", "replace": "+-"}


def _field_lines(change: FieldChange, separator: str) -> list[str]:
    """One field as text: `path: before → after`, or `path:` and a line diff under it."""
    shown = render_pair(change.before, change.after)
    if isinstance(shown, tuple):
        old, new = shown
        if old == new:  # e.g. 1 and "1": show them as JSON so the two sides never read the same
            old, new = json.dumps(change.before), json.dumps(change.after)
        return [f"{change.path}: {old}{separator}{new}"]
    return [f"{change.path}:", *(f"    {line}" for line in shown)]


def _separator(diff: StackDiff) -> str:
    return "  |  " if diff.comparison else " → "


def _headline(diff: StackDiff) -> str:
    if diff.comparison:
        return f"Compare {diff.before_label} | {diff.after_label}: {diff.summary()}"
    return f"Diff {diff.before_label} → {diff.after_label}: {diff.summary()}"


def _legend(diff: StackDiff) -> str:
    return (
        f"(left: {diff.before_label}, right: {diff.after_label}; in line diffs - {diff.before_label}, "
        f"+ {diff.after_label})"
        if diff.comparison
        else ""
    )


def render_text(diff: StackDiff) -> str:
    sep = _separator(diff)
    lines = [_headline(diff)]
    if diff.comparison and (diff.config or diff.resources or diff.outputs):
        lines.append(_legend(diff))
    if diff.config:
        lines += ["", "Config:"]
        for c in diff.config:
            lines += [f"  ~ {line}" if i == 0 else f"    {line}" for i, line in enumerate(_field_lines(c, sep))]
    if diff.resources:
        lines += ["", "Resources:"]
        for r in diff.resources:
            why = f"; {r.forced}" if r.forced else ""
            lines.append(f"  {_MARKS[r.kind]} {r.type}  {r.name}  ({diff.impact(r)}{why})")
            lines += [f"      {line}" for f in r.fields for line in _field_lines(f, sep)]
    if diff.outputs:
        lines += ["", "Outputs:"]
        for c in diff.outputs:
            lines += [f"  ~ {line}" if i == 0 else f"    {line}" for i, line in enumerate(_field_lines(c, sep))]
    return "\n".join(lines)


def _fence(lines: list[str]) -> list[str]:
    """Lines in a code block whose fence no line can close early."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, *lines, fence]


def _cell(text: str) -> str:
    """A one-line value as a Markdown table cell: in code, pipes escaped, backticks kept."""
    ticks = "``" if "`" in text else "`"
    pad = " " if ticks == "``" else ""
    return f"{ticks}{pad}{text.replace('|', '&#124;')}{pad}{ticks}"


def _markdown_title(diff: StackDiff, stack: str | None) -> str:
    if diff.comparison:
        return f"Offline comparison `{diff.before_label}` | `{diff.after_label}`"
    return f"Offline diff for `{stack}`" if stack else f"Offline diff `{diff.before_label}` → `{diff.after_label}`"


def _markdown_config(diff: StackDiff, budget: int) -> list[str]:
    """The config changes as a table; a value shown as a line diff goes in a collapsible block under it."""
    if not diff.config:
        return []
    left, right = (diff.before_label, diff.after_label) if diff.comparison else ("before", "after")
    rows = [f"| config key | {left} | {right} |", "|---|---|---|"]
    blocks: list[str] = []
    for n, c in enumerate(diff.config):
        if _size(rows) + _size(blocks) > budget:
            rows.append(f"| _…and {len(diff.config) - n} more keys, not shown (GitHub's comment size limit)_ | | |")
            break
        shown = render_pair(c.before, c.after)
        if isinstance(shown, tuple):
            rows.append(f"| `{c.path}` | {_cell(shown[0])} | {_cell(shown[1])} |")
        else:
            rows.append(f"| `{c.path}` | (line diff below) | |")
            blocks += [f"<details><summary><code>{c.path}</code></summary>", "", *_fence(shown), "", "</details>", ""]
    return [*rows, "", *blocks]


def _size(lines: list[str]) -> int:
    return sum(len(line) + 1 for line in lines)


def render_markdown(diff: StackDiff, stack: str | None = None, budget: int = MARKDOWN_BUDGET) -> str:
    """A PR-comment-ready diff: the summary first, a config table, one line per resource, then each resource's
    fields in a collapsible block. It stays within `budget` characters on any change: what does not fit is
    elided, and the comment says so."""
    sep = _separator(diff)
    words = {"add": "create", "delete": "delete", "update": "update", "replace": "replace"}
    if diff.comparison:
        words = {"add": f"only in {diff.after_label}", "delete": f"only in {diff.before_label}", "update": "differs"}
    out = [f"### {_markdown_title(diff, stack)}", "", f"**{diff.summary()}**", ""]
    if diff.comparison and (diff.config or diff.resources):
        out += [f"_{_legend(diff)}_", ""]
    out += _markdown_config(diff, budget // 4)
    footer = ["", "_Computed offline under Pulumi mocks (no cloud calls); `pulumi preview` is authoritative._"]
    reserve = 400  # the elision note and the footer
    listing = [
        f"- **{words[r.kind]}** `{r.type}` `{r.name}`"
        + (f" ({r.forced})" if r.forced else "")
        + ("" if diff.comparison else f": {diff.impact(r)}")  # between two stacks the word says it all
        for r in diff.resources
    ]
    # The listing may take at most 60% of what is left: the details of the first resources need room too.
    room = int((budget - reserve - _size(out)) * 0.6)
    listed = 0
    while listed < len(listing) and _size(listing[: listed + 1]) <= room:
        listed += 1
    out += listing[:listed]
    unlisted = len(listing) - listed
    if unlisted:
        out.append(f"- _…and {unlisted} more resources, not listed (GitHub's comment size limit)._")
    out.append("")
    hidden = 0
    for r in diff.resources:
        if not r.fields:
            continue
        body = [line for f in r.fields for line in _field_lines(f, sep)]
        block = [f"<details><summary>{words[r.kind]} <code>{r.name}</code> ({r.type})</summary>", ""]
        block += [*_fence(body), "", "</details>"]
        if _size(out) + _size(block) + reserve > budget:
            hidden += 1
            continue
        out += block
    if hidden or unlisted:
        what = f"the fields of {hidden} resources" + (f" and {unlisted} resource lines" if unlisted else "")
        out += [
            "",
            f"_Elided to stay within GitHub's comment size limit: {what}. "
            "The text form (`python -m stacks diff` without `--markdown`) shows every field._",
        ]
    return "\n".join(out + footer)


def preview_at_ref(project_dir: Path, ref: str, stack: str) -> dict[str, Any]:
    """The preview document of `stack` as the project was at git `ref`: that ref's program, components and files.

    The ref's tree previews with its own tools (`python -m stacks preview <stack> --json` as that tree has it), in
    this process, with its own packages and contracts (`offline.isolation`, which says why in this process).
    """
    archive = subprocess.run(
        ["git", "-C", str(project_dir), "archive", "--format=tar", ref],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise RuntimeError(f"git archive {ref}: {archive.stderr.decode().strip()}")
    with tempfile.TemporaryDirectory(prefix="stacks-base-") as tmp:
        base = Path(tmp)
        with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
            tar.extractall(base, filter="data")
        packages = project_packages(project_dir) | project_packages(base)
        run = run_module_in_tree(base, packages, "stacks", ["preview", stack, "--json"])
        if run.code != 0:
            raise RuntimeError(f"preview of {stack} at {ref} failed:\n{run.stderr.strip() or run.stdout.strip()}")
        doc: dict[str, Any] = json.loads(run.stdout)
        return doc
