"""What runs inside a measured cell process: the entry, the scenario kinds (pool, switch), the load driver.

Nothing here imports analysis, reports or the harness (tests/test_layout.py).
"""
