#!/usr/bin/env bash
# Install the launcher into an image: the same step for docker/Dockerfile.cpu, .cuda and .rocm.
#   PYTHON        interpreter whose environment gets the launcher (default python3)
#   SRC           the repository checkout (default .)
#   PREFIX        where the presets go (default /opt/vllm-launch): $PREFIX/presets, read via LAUNCHER_PRESETS_DIR
#                 (the tables are package data: the installed package reads its own copy)
#   APP_UID       the non-root user the image runs as (default 10001, user and group "launcher")
#   EXTRA_GROUPS  groups that user joins when the image has them (ROCm: "video render" for /dev/kfd, /dev/dri)
#   MODEL_CACHE   the model cache folder (HF_HOME), owned by that user (default /models-cache)
set -euo pipefail
PYTHON=${PYTHON:-python3}
SRC=${SRC:-.}
PREFIX=${PREFIX:-/opt/vllm-launch}
APP_UID=${APP_UID:-10001}
EXTRA_GROUPS=${EXTRA_GROUPS:-}
MODEL_CACHE=${MODEL_CACHE:-/models-cache}

# Not editable: the image must not depend on the build context. Dependencies already in the base image
# (vLLM's images ship fastapi, uvicorn, pydantic, ...) are kept as they are.
"$PYTHON" -m pip install --quiet "$SRC"
rm -rf "$PREFIX/presets"
mkdir -p "$PREFIX"
cp -r "$SRC/configs/presets" "$PREFIX/presets"
# Only the presets: a chmod over $PREFIX would touch the CPU image's venv there and copy all of it into this layer.
chmod -R a+rX "$PREFIX/presets"

if ! getent passwd launcher >/dev/null; then
    groupadd --gid "$APP_UID" launcher
    useradd --no-log-init --create-home --uid "$APP_UID" --gid "$APP_UID" --shell /usr/sbin/nologin launcher
fi
for group in $EXTRA_GROUPS; do
    if getent group "$group" >/dev/null; then usermod --append --groups "$group" launcher; fi
done
mkdir -p "$MODEL_CACHE"
chown "$APP_UID:$APP_UID" "$MODEL_CACHE"

# Smoke test: the entrypoint is on PATH, reads the tables from the installed package (not the source tree) and the
# presets from their new home.
command -v launcher >/dev/null || { echo "install-launcher: 'launcher' is not on PATH" >&2; exit 1; }
(cd / && launcher rules --format json >/dev/null)
LAUNCHER_PRESETS_DIR="$PREFIX/presets" "$PYTHON" -c 'import sys; from launcher.serve.presets import available; sys.exit(not available())'
