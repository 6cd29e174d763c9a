"""The HTTP load side: arrival schedules, an async sender that times audio as it streams, and rate sweeps."""
