"""`python -m ttsload ...` is the `ttsload` command."""

import sys

from ttsload.cli.main import main

sys.exit(main())
