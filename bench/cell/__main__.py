"""`python -P -m ttsload.bench.cell SPEC_JSON EVENTS_FD`: the measured process (see entry.py)."""

import sys

from ttsload.bench.cell.entry import main

sys.exit(main(sys.argv))
