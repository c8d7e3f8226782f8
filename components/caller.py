"""Who runs `pulumi up`: a person (from a laptop, `az login`) or an Entra app (CI, OIDC), as role assignments
must say.

azure-native's `RoleAssignment` sends `principalType: User` when none is given (the ARM spec's default), and ARM
refuses a type that does not match the principal (`UnmatchedPrincipalType`). The type is read from the caller's own
Entra access token for ARM, obtained through the azure-native provider's credentials: delegated (user) tokens carry
the `scp` claim, app-only tokens (service principals, managed identities) never do ("scp ... only present for user
tokens", learn.microsoft.com/entra/identity-platform/access-token-claims-reference). The optional `idtyp` claim
would say so directly, but only where the resource's registration asks for it, so it is used only when present.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pulumi
from pulumi_azure_native import authorization

USER = "User"
SERVICE_PRINCIPAL = "ServicePrincipal"


def principal_type_of(token: str) -> str:
    """`User` or `ServicePrincipal`, from the claims of an Entra access token (read, not verified: it is ours)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("the caller's access token is not a JWT; cannot tell a person from an Entra app")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    claims: Any = json.loads(base64.urlsafe_b64decode(payload))
    if not isinstance(claims, dict):
        raise ValueError("the caller's access token carries no claims")
    if claims.get("idtyp") == "app":
        return SERVICE_PRINCIPAL
    if claims.get("idtyp") == "user":
        return USER
    return USER if "scp" in claims else SERVICE_PRINCIPAL


def caller_principal_type(opts: pulumi.InvokeOutputOptions | None = None) -> pulumi.Output[str]:
    """The principal type of the identity the azure-native provider runs as (not a secret: only its type)."""
    token = authorization.get_client_token_output(opts=opts)
    return pulumi.Output.unsecret(token.token.apply(principal_type_of))
