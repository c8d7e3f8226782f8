"""The offline tools: the program run under Pulumi's mocks, the mock cloud, and preview, diff and render on top.

They sit above the program: `stacks` is the stack-file layer the program itself uses (settings, files, engine
config, pin), and nothing in the program or in `stacks` imports this package (`stacks/__main__.py` only hands the
command line to `offline.cli`). Within it, `wire` (values as they cross the RPC boundary) is shared by `mockcloud`
(the cloud's answers) and `harness` (the recording monitor and the program run), so neither imports the other for
it; `preview`, `diff` and `render` build on `harness`; `cli` is `python -m stacks`.
"""
