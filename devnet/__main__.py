"""``python -m devnet``."""

import sys

from devnet.cli import main

sys.exit(main())
