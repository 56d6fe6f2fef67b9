#!/usr/bin/env bash
# Makes deploy/requirements.lock again, which the Dockerfile installs with --require-hashes:
# every dependency of the image (the stt, tts, llm and satellite extras, and the build backend)
# at the version installed in .venv (what the tests ran on), with the sha256 of every file PyPI
# has for that version (all platforms: amd64, arm64, ...). Run after changing dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/tools"
"$work/tools/bin/pip" install --quiet pip-tools
.venv/bin/pip freeze --exclude-editable > "$work/tested-versions.txt"
cp pyproject.toml README.md "$work/"
printf '# The build backend (pyproject.toml [build-system]): the image builds without isolation.\nsetuptools>=68\nwheel\n' \
    > "$work/build.in"
cd "$work"
# PyPI only (no local mirrors or wheel dirs), so every hash is one any build can check.
PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= CUSTOM_COMPILE_COMMAND=scripts/lock-image.sh \
    "$work/tools/bin/pip-compile" --quiet \
    --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
    --index-url https://pypi.org/simple \
    --extra stt --extra tts --extra llm --extra satellite \
    --constraint tested-versions.txt \
    --output-file requirements.lock pyproject.toml build.in
cp requirements.lock "$root/deploy/requirements.lock"
echo "Wrote deploy/requirements.lock ($(grep -c '==' requirements.lock) packages)"
