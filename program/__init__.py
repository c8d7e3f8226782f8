"""The program's translation of a stack file into what the components take (`program.stack_args`).

The components speak their own value types; the stack settings speak the stack file's keys. This package is the
one place that knows both, so a stack-file key that changes is a change here and in `stacks/settings.py`, never
in a component.
"""
