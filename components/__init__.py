"""Pulumi component resources: one per module, each owning one part of the platform or the release path.

The shape every component follows, and where it comes from:

- A small component class that calls builder functions, one per group of children, each taking the component's
  name, its Args and the parent (`build_workload_identity`, `build_deployment`, ... for ModelDeployment;
  `build_listener_storage`, `grant_listener_access`, `build_function_app` for WebhookListener). This is how
  pulumi-eks builds its children: `createCore(name, args, this)` and
  `createNodeGroupSecurityGroup(name, args, parent)` are plain functions its `Cluster` and `NodeGroup` classes call
  (github.com/pulumi/pulumi-eks, nodejs/eks/cluster.ts and nodejs/eks/nodes/securitygroup.ts).
- Every child has `parent=` the component and is named from the component's name (`f"{name}-<role>"`), and
  `register_outputs` is the constructor's last statement (pulumi.com/docs/iac/concepts/components/, "Authoring a
  New Component Resource"). What it registers is exactly what the class or module docstring lists under
  "Registered outputs:" (tests/components/test_component_shape.py checks both ways).
- Args are frozen dataclasses with a docstring per field, flat and typed (the component guide's "keep structures
  flat", pulumi.com/docs/iac/guides/building-extending/components/build-a-component/), whose types are the
  components' own: small frozen value types that refuse what cannot be built (`NodePool`, `Dispatch` =
  `GitHubDispatch | AzureDevOpsDispatch`, `PromotionSignal`, `Exposure`), never a stack-file section. The one
  translation from the stack file is `program/stack_args.py`; only the identifier rules come from `stacks`
  (tests/test_import_layers.py and the shape test check both).
- Shared pieces are written once: `Placement` (placement.py: naming, resource group, region, tags, protect) in every
  Args that places Azure resources; `assign_role` (role_assignment.py) for every role assignment, with the
  principal type read from the caller when the principal is whoever runs `pulumi up` (caller.py);
  `hardened_storage_account` (storage_account.py) for every storage account.
- Refactors keep every child's name, type and parent, so a URN never changes (a changed URN is a delete and a
  create; reparenting would need `aliases`).
"""
