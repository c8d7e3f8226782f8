"""ModelAlerts: the model's alert rules as Azure Monitor Prometheus rule groups, and who they notify.

Owns: an action group (email receivers, and a webhook to the listener's alert route with the common alert schema)
and one `PrometheusRuleGroup` per group of monitoring/rules.py, scoped to the stack's Azure Monitor workspace and
cluster. The rules are the same objects the Prometheus rules file is rendered from, so Azure and `promtool` see one
definition.
Registered outputs: `actionGroupId`, `ruleGroupIds`; the `action_group` and `rule_groups` resources are attributes.

Azure shapes (learn.microsoft.com/azure/azure-monitor/essentials/prometheus-rule-groups): `scopes` holds the Azure
Monitor workspace and may add the cluster; `clusterName` makes Azure add a `cluster="<name>"` filter to every query,
so one workspace can hold several clusters' series; `for` and `interval` are ISO 8601 durations; alert severity is
0 (critical) to 4 (verbose).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote_plus

import pulumi
from pulumi_azure_native import alertsmanagement, monitor

from components.contracts import listener
from components.placement import Placement
from monitoring.rules import AZURE_SEVERITY, AlertRule, RuleGroup, iso8601_duration

# The listener's route for Azure Monitor's common alert schema (defined by the listener; served by the Function App).
AZURE_MONITOR_ALERT_ROUTE = listener.Routes.ALERTS_AZURE_MONITOR
# An alert that stops breaching resolves itself after this long (Azure's default is 5 minutes).
TIME_TO_RESOLVE_SECONDS = 10 * 60
_SHORT_NAME_MAX = 12


def listener_alert_url(default_host_name: pulumi.Input[str], token: pulumi.Input[str]) -> pulumi.Output[str]:
    """The listener's alert route with the route's own shared secret (`token`, the listener's
    LISTENER_AZURE_MONITOR_TOKEN), which is how the route authenticates Azure Monitor: the Function App is anonymous
    at the host (no function key exists before the first publish; see listener/function_app.py). A secret."""
    query = pulumi.Output.concat("?token=", pulumi.Output.from_input(token).apply(quote_plus))
    return pulumi.Output.secret(pulumi.Output.concat("https://", default_host_name, AZURE_MONITOR_ALERT_ROUTE, query))


@dataclass(frozen=True)
class ModelAlertsArgs:
    """The rule groups to declare, where they evaluate, and whom they notify."""

    placement: Placement
    """Name (`<project>-<stack>-alerts`; rule groups by their own names), resource group, region (the
    Azure Monitor workspace's) and tags of the action group and rule groups."""
    groups: Sequence[RuleGroup]
    """The rule groups (monitoring.rules.rule_groups)."""
    azure_monitor_workspace_id: pulumi.Input[str]
    """The Azure Monitor workspace the rules evaluate against (managed Prometheus)."""
    cluster_id: pulumi.Input[str]
    """The cluster whose metrics the rules read (a scope of each rule group)."""
    cluster_name: pulumi.Input[str]
    """The cluster's name, which rule groups scoped to a cluster carry."""
    emails: Sequence[str]
    """Email receivers; may be empty if the listener receives."""
    listener_alert_url: pulumi.Input[str] | None
    """The listener's alert route (a secret URL with its key), or None to send no webhook."""


def _validate(args: ModelAlertsArgs) -> None:
    problems: list[pulumi.InputPropertyErrorDetails] = []
    if not args.emails and args.listener_alert_url is None:
        problems.append({"property_path": "emails", "reason": "no receiver: give emails or listener_alert_url"})
    if not args.groups or any(not g.rules for g in args.groups):
        problems.append({"property_path": "groups", "reason": "needs at least one group, each with rules"})
    if problems:
        details = "; ".join(f"{p['property_path']}: {p['reason']}" for p in problems)
        raise pulumi.InputPropertiesError(f"ModelAlertsArgs: {details}", problems)


def azure_rule(rule: AlertRule, action_group_id: pulumi.Input[str]) -> alertsmanagement.PrometheusRuleArgs:
    """One rule as Azure Monitor takes it: the same expression, labels and annotations as the rules file."""
    return alertsmanagement.PrometheusRuleArgs(
        alert=rule.alert,
        expression=rule.expr,
        for_=iso8601_duration(rule.for_seconds),
        severity=AZURE_SEVERITY[rule.severity],
        labels=rule.labels,
        annotations=rule.annotations,
        enabled=True,
        actions=[alertsmanagement.PrometheusRuleGroupActionArgs(action_group_id=action_group_id)],
        resolve_configuration=alertsmanagement.PrometheusRuleResolveConfigurationArgs(
            auto_resolved=True, time_to_resolve=iso8601_duration(TIME_TO_RESOLVE_SECONDS)
        ),
    )


class ModelAlerts(pulumi.ComponentResource):
    """The action group and the Prometheus rule groups of one stack's model."""

    action_group: monitor.ActionGroup
    rule_groups: list[alertsmanagement.PrometheusRuleGroup]
    action_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: ModelAlertsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        _validate(args)
        super().__init__("mlops:monitoring:ModelAlerts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.placement.tag_map()
        webhooks = []
        if args.listener_alert_url is not None:
            webhooks.append(
                monitor.WebhookReceiverArgs(
                    name="listener",
                    service_uri=pulumi.Output.secret(args.listener_alert_url),
                    use_common_alert_schema=True,
                )
            )
        self.action_group = monitor.ActionGroup(
            f"{name}-action-group",
            action_group_name=args.placement.naming.resource("alerts"),
            resource_group_name=args.placement.resource_group_name,
            # Action groups are global resources.
            location="global",
            group_short_name=args.placement.naming.stack[:_SHORT_NAME_MAX],
            enabled=True,
            email_receivers=[
                monitor.MicrosoftCommonEmailReceiverArgs(
                    name=f"email-{i}", email_address=email, use_common_alert_schema=True
                )
                for i, email in enumerate(args.emails)
            ],
            webhook_receivers=webhooks,
            tags=tags,
            # The webhook URL carries the alert route's token: keep the provider's copy secret in the state.
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["webhookReceivers"]),
        )
        self.action_group_id = self.action_group.id
        self.rule_groups = [
            alertsmanagement.PrometheusRuleGroup(
                f"{name}-{group.name.rsplit('-', 1)[-1]}",
                rule_group_name=group.name,
                resource_group_name=args.placement.resource_group_name,
                location=args.placement.location,
                description=f"{group.name}: rendered from monitoring/rules.py (the same rules as the rules file).",
                scopes=[args.azure_monitor_workspace_id, args.cluster_id],
                cluster_name=args.cluster_name,
                interval=iso8601_duration(group.interval_seconds),
                enabled=True,
                rules=[azure_rule(rule, self.action_group.id) for rule in group.rules],
                tags=tags,
                opts=child,
            )
            for group in args.groups
        ]
        self.register_outputs({"actionGroupId": self.action_group_id, "ruleGroupIds": [g.id for g in self.rule_groups]})
