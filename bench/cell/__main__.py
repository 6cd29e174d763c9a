"""`python -P -m ttsload.bench.cell SPEC_FD EVENTS_FD LOG_PATH`: the measured process (see entry.py)."""

import sys

from ttsload.bench.cell.entry import main

sys.exit(main(sys.argv))
