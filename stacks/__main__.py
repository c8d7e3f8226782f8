"""`python -m stacks`: the offline tools' command line (preview, diff, pin, render); it lives in `offline.cli`."""

import gc
import sys

from offline.cli import main

if __name__ == "__main__":
    code = main()
    # The process ends here: skip a last full collection over every object the provider SDKs made (frozen objects
    # are left out of it, docs.python.org/3/library/gc.html#gc.freeze); docs/decisions/0003-offline-tools-speed.md.
    gc.freeze()
    sys.exit(code)
