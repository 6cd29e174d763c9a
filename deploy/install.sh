#!/bin/sh
# Install ttsload the way its tests ran, into the current Python environment: torch's CPU wheel first (PyPI's
# default torch wheel is a CUDA build several GB large), then ttsload constrained by the lock (constraints.txt),
# then `ttsload doctor --fix`, which fails unless every native piece loads (it installs FFmpeg's libraries with
# apt-get when run as root on Debian). deploy/Dockerfile and the GitHub fan-out workflow run this script, and
# `nox -s install_recipe` runs it in a fresh venv, so the image's recipe is tested where no container engine runs.
#
#   sh deploy/install.sh [SOURCE]    # SOURCE: the ttsload checkout (default: .)
set -eu
SOURCE=${1:-.}
TORCH=$(grep -E '^torch==' "$SOURCE/constraints.txt")
python -m pip install --no-cache-dir "$TORCH" --index-url https://download.pytorch.org/whl/cpu
python -m pip install --no-cache-dir "$SOURCE" -c "$SOURCE/constraints.txt"
ttsload doctor --fix
