"""The parent side of a measurement: start a cell process, sample its tree's memory, read its events, keep its results."""
