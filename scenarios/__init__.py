"""Built-in scenario scripts (TOML), shipped as package data of ttsload.scenarios."""
