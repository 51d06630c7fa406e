"""`python -m lth`: the `lth` command of this interpreter's environment."""

import sys

from lth.cli import main

sys.exit(main())
