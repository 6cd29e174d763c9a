"""The Coqui family: Coqui TTS models (VITS, ...) through Coqui's own classes."""
