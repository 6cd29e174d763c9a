"""The http scenario's server (gunicorn + Flask, inside the cell's tree) and its out-of-process load generator."""
