"""What runs inside a measured cell process: the entry, the scenario kinds (pool, switch) and the load driver. Never imports analysis or reports."""
