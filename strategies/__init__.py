"""How a TTS model gets loaded (loaders) and where it lives while serving (topologies).

Nothing here imports measurement code: the harness observes a strategy from outside, through
the tiny `Hook` callback each strategy is handed. torch and Coqui are imported lazily, so that
importing this package costs nothing and the harness can time those imports as their own phase.
"""
