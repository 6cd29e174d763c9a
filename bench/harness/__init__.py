"""The parent side of a measurement: start a cell process, sample its memory, read its events, keep results."""
