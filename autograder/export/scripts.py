"""The two scripts at the root of a Gradescope autograder zip: `setup.sh` and `run_autograder`.

Both take the autograder's root from `AUTOGRADER_ROOT` (Gradescope's `/autograder` by default), so that
tests run them against a temporary root laid out like Gradescope's (`source/`, `submission/`, `results/`).
Gradescope unpacks the zip into `<root>/source`, runs `setup.sh` there once (as root, with network) when it
builds the image, and `run_autograder` once per submission, in a fresh container.
"""

from __future__ import annotations

SETUP_SH = r"""#!/usr/bin/env bash
# torchgrade on Gradescope: run once (as root, with network) when Gradescope builds the autograder image.
# Makes a Python >= 3.11 virtual environment at $AUTOGRADER_ROOT/torchgrade-venv holding the CPU build of
# torch and torchvision (PyTorch's CPU index), torchgrade's dependencies (PyPI) and torchgrade itself: the
# source shipped in this zip (source/torchgrade/autograder), so no PyPI release of torchgrade is needed.
# `source setup.sh` defines the steps without running them.
set -euo pipefail

ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
VENV="${TORCHGRADE_VENV:-$ROOT/torchgrade-venv}"
TORCH_INDEX="${TORCHGRADE_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"

# A Python >= 3.11 that can make a virtual environment: the system's where it has one, else a standalone
# CPython through uv (Ubuntu 22.04 ships 3.10).
make_venv() {
    local py
    for py in python3.13 python3.12 python3.11 python3; do
        command -v "$py" >/dev/null 2>&1 || continue
        "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || continue
        rm -rf "$VENV"
        if "$py" -m venv "$VENV" >/dev/null 2>&1; then
            return 0
        fi
    done
    install_uv
    rm -rf "$VENV"
    UV_PYTHON_INSTALL_DIR="$ROOT/uv/python" "$ROOT/uv/uv" venv --seed --python 3.11 "$VENV"
}

install_uv() {
    if ! command -v curl >/dev/null 2>&1; then
        apt-get update && apt-get install -y --no-install-recommends curl ca-certificates
    fi
    curl -LsSf https://astral.sh/uv/install.sh | env UV_INSTALL_DIR="$ROOT/uv" UV_NO_MODIFY_PATH=1 sh
}

install_torchgrade() {
    local python="$VENV/bin/python" site
    "$python" -m pip install --upgrade pip
    "$python" -m pip install torch torchvision --index-url "$TORCH_INDEX"
    "$python" -m pip install -r "$SOURCE/torchgrade/requirements.txt"
    site="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "$SOURCE/torchgrade" > "$site/torchgrade.pth"  # the shipped source, as an installed package
    "$python" -c 'import autograder, torch; print("torchgrade", autograder.__version__, "torch", torch.__version__)'
}

main() {
    make_venv
    install_torchgrade
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# torchgrade on Gradescope: grade the one notebook in $AUTOGRADER_ROOT/submission into
# $AUTOGRADER_ROOT/results/results.json (AUTOGRADER_ROOT defaults to /autograder).
# TORCHGRADE_PYTHON: the interpreter (default: the one setup.sh installed); TORCHGRADE_ISOLATION: auto (the
# default: the bubblewrap sandbox where the container allows user namespaces, else the kernel as an
# unprivileged user of its own when running as root, else none), bwrap, user, or none.
set -u

ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
PYTHON="${TORCHGRADE_PYTHON:-$ROOT/torchgrade-venv/bin/python}"
RESULTS="$ROOT/results/results.json"

mkdir -p "$ROOT/results"
rm -f "$RESULTS"
cd "$SOURCE" || exit 1
PYTHONPATH="$SOURCE/torchgrade${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m autograder.export.gradescope_run \
    --root "$ROOT" --bundle "$SOURCE/bundle"
status=$?

# Whatever happened, Gradescope gets a results.json: here, one that says the grader failed.
if [ ! -s "$RESULTS" ]; then
    message="The autograder failed before it could grade this submission (exit status $status)."
    message="$message Please tell your instructor; this is not a grade."
    printf '{"score": 0, "execution_time": 0, "tests": [], "stdout_visibility": "hidden", "output": "%s"}\n' \
        "$message" > "$RESULTS"
fi
exit 0
"""
