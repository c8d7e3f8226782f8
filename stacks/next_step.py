"""What a person reads after `pulumi up` of a stack that pins no model yet: the `nextStep` output."""

from __future__ import annotations

from stacks.settings import StackSettings


def day_zero_next_step(settings: StackSettings, stack: str) -> str:
    """What a stack that pins no model yet needs next, for its `nextStep` output (people read it after `pulumi up`)."""
    if not settings.shared.owner:
        return (
            f"No model pinned yet. Once {settings.shared.stack} serves a version, the promote workflow proposes it "
            f"here with the digest {settings.shared.stack} built; by hand: python -m stacks pin {stack} "
            "--model <name> --version <v> --digest sha256:<digest>"
        )
    release = settings.release
    registry = settings.model_registry
    assert release is not None
    assert registry is not None
    if registry.type == "unity-catalog":
        how = (
            f"register a model version in {registry.schema_full_name} (as one of modelRegistry.registerers) and set "
            f"its alias {release.promote_alias!r}"
        )
        example = f"{registry.schema_full_name}.<model>"
    else:
        how = f"register a model version and transition it to {' or '.join(release.promote_stages)}"
        example = "<model>"
    return (
        f"No model pinned yet: {how}. The registry tells the listener, which starts the promote workflow; it opens "
        f"the pull request that pins the version in Pulumi.{stack}.yaml (its diff: the image build and the "
        f"deployment added). By hand: python -m stacks pin {stack} --model {example} --version <v>"
    )
