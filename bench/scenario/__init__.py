"""Scenario scripts: finding and reading them, the key-by-key schema, and the seeded text corpus."""
