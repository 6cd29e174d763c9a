"""`python -m ttsload ...` is the `ttsload` command."""

import sys

from ttsload.bench.commands.cli import main

sys.exit(main())
