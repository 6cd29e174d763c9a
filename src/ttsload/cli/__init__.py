"""The `ttsload` command: main.py parses and dispatches; the other modules are the commands' bodies."""
