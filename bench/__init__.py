"""ttsload's harness: model fixtures, isolated measured processes, results, and the CLI."""

__version__ = "0.1.0"
