"""`python -m chainwatch.cli`: the `chainwatch` command."""

import sys

from chainwatch.cli.app import main

sys.exit(main())
