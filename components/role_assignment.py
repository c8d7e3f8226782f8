"""One way to grant an Azure role: a built-in role definition, by id, at one scope, to one principal.

Before, role assignments were built three ways (a local `grant`, a `_role` helper, and inline), each spelling the
role definition's ARM id and the principal type its own way. The principal type matters: azure-native sends
`principalType: User` when none is given, and ARM refuses a type that does not match the principal
(`UnmatchedPrincipalType`); when the principal is whoever runs `pulumi up` (a person or CI's Entra app), the type is
read from the caller itself (components/caller.py), never fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi
from pulumi_azure_native import authorization

from components.caller import caller_principal_type


@dataclass(frozen=True)
class Principal:
    """An Entra principal a role is granted to, with the type ARM checks it against."""

    object_id: str
    type: Literal["User", "Group", "ServicePrincipal"]


def role_definition_id(subscription_id: pulumi.Input[str], role_id: str) -> pulumi.Output[str]:
    """The subscription-scoped ARM id of a built-in role definition (its GUID is the same in every tenant)."""
    return pulumi.Output.concat(
        "/subscriptions/", subscription_id, "/providers/Microsoft.Authorization/roleDefinitions/", role_id
    )


def assign_role(
    name: str,
    *,
    role_id: str,
    scope: pulumi.Input[str],
    principal_id: pulumi.Input[str],
    principal_type: pulumi.Input[str] | None,
    subscription_id: pulumi.Input[str],
    parent: pulumi.Resource,
    description: pulumi.Input[str] | None = None,
    depends_on: Sequence[pulumi.Resource] = (),
) -> authorization.RoleAssignment:
    """A role assignment named `name`, a child of `parent`.

    `principal_type`: `User`, `Group` or `ServicePrincipal` (managed identities are service principals); None
    means the principal is the caller of the azure-native provider, and its type is read from the caller's token.
    """
    return authorization.RoleAssignment(
        name,
        scope=scope,
        principal_id=principal_id,
        principal_type=principal_type
        if principal_type is not None
        else caller_principal_type(pulumi.InvokeOutputOptions(parent=parent)),
        role_definition_id=role_definition_id(subscription_id, role_id),
        description=description,
        # ARM allows one assignment per (scope, role, principal) and refuses a second under another name with 409
        # RoleAssignmentExists (learn.microsoft.com/azure/role-based-access-control/troubleshooting); Pulumi's
        # default create-before-delete replacement would make exactly that second one.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on), delete_before_replace=True),
    )
