"""The bodies of ttsload's commands (run, doctor) and what the terminal shows; bench/cli.py parses and dispatches."""
