"""`python -m stacks`: the offline tools' command line (preview, diff, pin, render); it lives in `offline.cli`."""

import sys

from offline.cli import main

if __name__ == "__main__":
    sys.exit(main())
