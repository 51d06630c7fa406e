"""`python -m lth.report`: what the workflow's report rule runs."""

import sys

from lth.report.notebook import main

if __name__ == "__main__":
    sys.exit(main())
