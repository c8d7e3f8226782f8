"""Serves the pack to the Pulumi engine: `pulumi preview --policy-pack policies` runs this file.

The engine starts `python -m pulumi.policy <engine> .` in this directory, which runs this file as a script, so the
rules are imported as the top-level module `rules` there; type checkers and tests know them as `policies.rules`.
Constructing `PolicyPack` starts the analyzer server and blocks: nothing else may import this module.
"""

from typing import TYPE_CHECKING

from pulumi_policy import EnforcementLevel, PolicyPack

if TYPE_CHECKING:
    from policies import rules
else:
    import rules

PolicyPack(
    name=rules.PACK_NAME,
    policies=rules.build_policies(),
    enforcement_level=EnforcementLevel.MANDATORY,
    description="Mandatory security policies of the mlops-serving platform (Azure, Databricks, AKS workloads).",
)
