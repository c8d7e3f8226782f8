"""The "Deploying for real" runbook against what the program declares and exports: the resource providers it
registers, the vCPU quota it checks, and the dispatch token's step (grant, set, revoke, refresh)."""

from __future__ import annotations

import re
import shlex
from collections import Counter
from pathlib import Path

import pytest

from components.azure_facts import AKS_NODE_RESOURCE_PROVIDERS, BUILT_IN_ROLES, RESOURCE_PROVIDERS, VM_SIZES
from offline.harness import ProgramRun
from offline.mockcloud import _ARM_TYPES
from offline.preview import StackRun
from stacks.files import load_stack_config
from tests.conftest import STAGING_REF, run_variant

ROOT = Path(__file__).resolve().parent.parent
# Registered in every subscription (learn.microsoft.com/azure/azure-resource-manager/management/
# resource-providers-and-types): the runbook need not register them.
ALWAYS_REGISTERED = {"Microsoft.Authorization", "Microsoft.Resources"}


def runbook() -> list[str]:
    """The runbook's command block, one line per entry."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Deploying for real", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return block.splitlines()


def commands() -> list[str]:
    return [line for line in runbook() if line and not line.startswith("#")]


@pytest.fixture(scope="module")
def prod_with_grafana(staging: StackRun) -> ProgramRun:
    def grafana(values: dict[str, object]) -> None:
        monitoring = values["mlops-serving:monitoring"]
        assert isinstance(monitoring, dict)
        monitoring["grafana"] = True

    return run_variant("prod", grafana, stack_outputs={STAGING_REF: staging.run.outputs})


def namespace(type_: str) -> str:
    if type_ not in _ARM_TYPES:
        raise AssertionError(f"{type_}: no ARM type in offline/mockcloud.py _ARM_TYPES, so no known namespace")
    arm = _ARM_TYPES[type_]
    return "Microsoft.Resources" if arm is None else arm.split("/")[0]


def test_every_namespace_the_stacks_declare_a_resource_in_is_registered(
    staging: StackRun, prod: StackRun, prod_with_grafana: ProgramRun
) -> None:
    runs = (staging.run, prod.run, prod_with_grafana)
    types = {r.type for run in runs for r in run.resources if r.type.startswith("azure-native:") and not r.read}
    assert "azure-native:dashboard:Grafana" in types
    needed = {namespace(t) for t in types} - ALWAYS_REGISTERED
    assert needed <= set(RESOURCE_PROVIDERS), f"not in RESOURCE_PROVIDERS: {sorted(needed - set(RESOURCE_PROVIDERS))}"
    # Besides what the program declares: what AKS creates in its node resource group (scale sets, load balancer).
    unused = set(RESOURCE_PROVIDERS) - needed - set(AKS_NODE_RESOURCE_PROVIDERS)
    assert not unused, f"registered but never used: {sorted(unused)}"
    assert set(AKS_NODE_RESOURCE_PROVIDERS) <= set(RESOURCE_PROVIDERS)


def test_the_runbook_registers_exactly_the_resource_providers() -> None:
    [line] = [c for c in commands() if "az provider register" in c]
    match = re.fullmatch(r'for ns in ([^;]+); do az provider register --wait --namespace "\$ns"; done', line)
    assert match, line
    names = match.group(1).split()
    assert len(names) == len(set(names))
    assert set(names) == set(RESOURCE_PROVIDERS)


def quota() -> dict[str, tuple[str, Counter[str], dict[str, int]]]:
    """Per stack: its region, the vCPUs its pools need per quota family at maxCount, and per pool size its count."""
    found: dict[str, tuple[str, Counter[str], dict[str, int]]] = {}
    for stack in ("staging", "prod"):
        settings = load_stack_config(ROOT, stack).settings()
        cluster = settings.cluster
        need: Counter[str] = Counter()
        counts: dict[str, int] = {}
        for pool in (cluster.system_pool, cluster.user_pool):
            vcpus, family = VM_SIZES[pool.vm_size]
            need[family] += pool.max_count * vcpus
            counts[pool.vm_size] = counts.get(pool.vm_size, 0) + pool.max_count
        found[stack] = (settings.location, need, counts)
    return found


def test_the_runbook_checks_the_vcpu_quota_both_stacks_need_at_max_count() -> None:
    needs = quota()
    text = "\n".join(runbook())
    [line] = [c for c in commands() if c.startswith("az vm list-usage")]
    words = shlex.split(line)
    regions = {location for location, _, _ in needs.values()}
    assert len(regions) == 1, "the runbook's one quota check assumes one region"
    assert words[words.index("--location") + 1] == regions.pop()
    families = set().union(*(need for _, need, _ in needs.values()))
    query = words[words.index("--query") + 1]
    assert set(re.findall(r"name\.value=='(\w+)'", query)) == families | {"cores"}
    for stack, (_, need, counts) in needs.items():
        terms = " + ".join(f"{n} x {size}" for size, n in counts.items())
        assert f"{stack}\n" in text or f"{stack} " in text
        assert f"{terms} = {sum(need.values())}" in " ".join(text.replace("#", " ").split())
    total = sum(sum(need.values()) for _, need, _ in needs.values())
    assert f">= {total}" in text


def test_the_dispatch_token_step_grants_sets_revokes_and_refreshes_in_that_order(staging: StackRun) -> None:
    lines = commands()

    def index(fragment: str) -> int:
        [i] = [i for i, line in enumerate(lines) if fragment in line]
        return i

    grant, put, revoke = (
        index("az role assignment create"),
        index("az keyvault secret set"),
        index("az role assignment delete"),
    )
    refresh = index("configreferences/appsettings/refresh")
    assert grant < put < revoke < refresh
    # Owner carries no data actions: writing a secret in an RBAC vault takes Key Vault Secrets Officer
    # (learn.microsoft.com/azure/key-vault/general/rbac-guide), granted on the vault only, and taken back.
    for i in (grant, revoke):
        words = shlex.split(lines[i])
        assert words[words.index("--role") + 1] == "Key Vault Secrets Officer" in BUILT_IN_ROLES
        assert words[words.index("--scope") + 1] == "$vault_id"
    assert 'vault_id="$(pulumi stack output keyVaultId ' in "\n".join(lines)
    assert "--output none" in lines[put], "the secret set must not print the token back"
    # App Service caches Key Vault references up to 24 h; this POST makes it resolve them now
    # (learn.microsoft.com/azure/app-service/app-service-key-vault-references, "Understand rotation").
    assert re.search(r"/config/configreferences/appsettings/refresh\?api-version=\d{4}-\d{2}-\d{2}\"$", lines[refresh])
    assert lines[refresh].startswith("az rest --method post --url ")


def test_every_stack_output_the_runbook_reads_is_one_the_stack_exports(staging: StackRun, prod: StackRun) -> None:
    # Steps 5 and 6 run on day zero, with no model pinned (step 1): what staging exports then counts too.
    day_zero = run_variant("staging", lambda values: values.pop("mlops-serving:model"), registry_models={})
    exported = {"staging": set(staging.run.outputs) | set(day_zero.outputs), "prod": set(prod.run.outputs)}
    read = re.findall(r"pulumi stack output (\w+) --stack acme-ml/mlops-serving/(\w+)", "\n".join(commands()))
    assert {"keyVaultId", "keyVaultName", "listenerAppName", "resourceGroupName"} <= {name for name, _ in read}
    missing = [(name, stack) for name, stack in read if name not in exported[stack]]
    assert missing == []
