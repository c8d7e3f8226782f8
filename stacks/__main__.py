"""`python -m stacks`: the offline tools' command line (preview, diff, pin, render); it lives in `offline.cli`."""

import gc
import sys

from offline.cli import main

if __name__ == "__main__":
    code = main()
    # The process ends here. Its last act would otherwise be a full collection over every object the provider SDKs
    # made (some 2 s of a 10 s `preview staging prod`, measured 2026-11-30); frozen objects are left out of it
    # (docs.python.org/3/library/gc.html#gc.freeze), and the operating system takes the memory back anyway.
    gc.freeze()
    sys.exit(code)
