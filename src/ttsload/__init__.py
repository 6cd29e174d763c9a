"""ttsload: measure how to load and serve a text-to-speech model before it goes behind a web server.

The parts live in the repository's top-level folders and install under this namespace (pyproject's
package-dir): `ttsload.bench` (the harness), `ttsload.strategies` (loaders and topologies),
`ttsload.reports` (tables, plots, HTML) and `ttsload.scenarios` (the built-in scenario scripts).
"""

__version__ = "0.2.0"
