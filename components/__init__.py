"""Pulumi component resources: one per module, each owning one part of the platform or the release path."""
