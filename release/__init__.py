"""What the release workflows run: promote a model version, roll back, comment diffs, record deployments.

Each module is a command (`python -m release.<module> --help`); the workflows under `.github/workflows/` only call
these, so the logic is tested here rather than written as inline shell.
"""
