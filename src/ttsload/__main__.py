"""`python -m ttsload ...` is the `ttsload` command."""

import sys

from ttsload.bench.cli import main

sys.exit(main())
