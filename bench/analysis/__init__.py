"""From raw observations to numbers: the metric registry, summary rows, statistics, leak fit, audio quality."""
