"""The harness: fixtures, isolated measured processes, results, analysis, regression gate and profiling.

Parts by folder (a path says where the code runs and what it may import; tests/test_layout.py
enforces the rules): commands/, harness/ (the parent side), cell/ (inside a measured process),
serving/ (the http scenario's server), scenario/ (scripts and texts), analysis/, regression/, profiling/.
"""
