"""`python -m demo`: the whole release loop on this machine (see demo/release_loop.py)."""

import sys

from demo.release_loop import main

sys.exit(main())
