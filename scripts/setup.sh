#!/usr/bin/env bash
# Create the project environment: system tools (espeak-ng, sox, ffmpeg, chromium, libsndfile) when missing,
# a virtualenv in .venv, and the package with its dev extras. PyTorch is pinned by constraints.txt
# so that no dependency can pull a CUDA build. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

missing=()
# chromium runs the web page's end-to-end test (Playwright drives Debian's build; no browser download).
for tool in espeak-ng sox ffmpeg chromium; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
# soundfile needs the shared library; check through ldconfig rather than a Python import.
ldconfig -p 2>/dev/null | grep -q libsndfile || missing+=(libsndfile1)
if ((${#missing[@]})); then
  echo "[setup] installing system packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.mtspeech-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "[setup] installing mtspeech and its dependencies (torch pinned by constraints.txt)"
  "$VENV/bin/pip" install -q -c constraints.txt torch==2.13.0
  "$VENV/bin/pip" install -q -c constraints.txt -e ".[dev]"
  # Guard: a CUDA build of torch or nvidia-* wheels means a dependency escaped the pin.
  if "$VENV/bin/pip" list 2>/dev/null | grep -qi '^nvidia-'; then
    echo "[setup] error: CUDA packages were installed; check constraints.txt" >&2
    exit 1
  fi
  touch "$stamp"
fi
echo "[setup] ready: $("$VENV/bin/python" -c 'import torch, lhotse; print(f"torch {torch.__version__}, lhotse {lhotse.__version__}")')"
