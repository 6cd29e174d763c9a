#!/bin/sh
# Install ttsload the way its tests ran, into the current Python environment: torch's CPU wheel first (PyPI's
# default torch wheel is a CUDA build several GB large), then ttsload constrained by the lock (constraints.txt),
# then `ttsload doctor --fix`, which fails unless every native piece loads (it installs FFmpeg's libraries with
# apt-get when run as root on Debian). deploy/Dockerfile and the GitHub fan-out workflow run this script, and
# `nox -s install_recipe` runs it in a fresh venv, so the image's recipe is tested where no container engine runs.
#
#   sh deploy/install.sh [SOURCE]    # SOURCE: the ttsload checkout (default: .)
#
# TORCH_INDEX_URL: where torch's CPU wheel comes from (default: the PyTorch CPU index); set it empty to use pip's
# configured indexes, for a mirror that serves the CPU build (as nox's sessions install torch).
set -eu
SOURCE=${1:-.}
TORCH=$(grep -E '^torch==' "$SOURCE/constraints.txt")
TORCH_INDEX_URL=${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}
if [ -n "$TORCH_INDEX_URL" ]; then
  python -m pip install --no-cache-dir "$TORCH" --index-url "$TORCH_INDEX_URL"
else
  python -m pip install --no-cache-dir "$TORCH"
fi
python -m pip install --no-cache-dir "$SOURCE" -c "$SOURCE/constraints.txt"
ttsload doctor --fix
