"""The Kokoro family: Kokoro-82M and other StyleTTS2-family models through kokoro's KModel."""
