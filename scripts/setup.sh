#!/usr/bin/env bash
# Install drzero and its dependencies (bash):
#
#     source scripts/setup.sh && drzero train   # the README's main command
#     bash scripts/setup.sh                     # the same install, without touching your shell
#     bash scripts/setup.sh --python            # print the interpreter it installs into; install nothing
#
# Where it installs, first match wins:
#   1. $DRZERO_PYTHON (an interpreter's path or name), if set;
#   2. the activated virtual environment ($VIRTUAL_ENV);
#   3. the project's own .venv/, if it exists;
#   4. python3, else python, on PATH (the global interpreter).
# An externally managed interpreter (PEP 668: Debian/Ubuntu's /usr/bin/python3, which refuses
# pip installs) is never installed into: set-up creates .venv/ from it (once) and installs there.
# Sourced, it then activates .venv/ in your shell, so `drzero` is on PATH; run with bash, it
# cannot, and says so. The install itself always runs in a child bash with `set -euo pipefail`,
# so sourcing leaves your shell's options alone.
#
# torch==2.13.0 goes first: on the project's CPU machines that pin resolves to a local CPU
# wheel; any other torch spec pulls GBs of CUDA packages.

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    # Sourced: install in a child, then put the environment it used on this shell's PATH.
    _drzero_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    if DRZERO_SETUP_SOURCED=1 bash "$_drzero_root/scripts/setup.sh" \
        && _drzero_py=$(bash "$_drzero_root/scripts/setup.sh" --python); then
        if [[ "$_drzero_py" == "$_drzero_root/.venv/bin/python" && "${VIRTUAL_ENV:-}" != "$_drzero_root/.venv" ]]; then
            # shellcheck disable=SC1091
            source "$_drzero_root/.venv/bin/activate"
            echo "setup: activated .venv/ in this shell: drzero is $(command -v drzero)"
        fi
        hash -r
        unset _drzero_root _drzero_py
        return 0
    fi
    unset _drzero_root _drzero_py
    return 1
fi

set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export PIP_ROOT_USER_ACTION=ignore

# The interpreter named by rules 1-4 above, as "managed|ok <sys.executable>".
if [[ -n "${DRZERO_PYTHON:-}" ]]; then candidate=$DRZERO_PYTHON
elif [[ -n "${VIRTUAL_ENV:-}" ]]; then candidate=$VIRTUAL_ENV/bin/python
elif [[ -x .venv/bin/python ]]; then candidate=$root/.venv/bin/python
else candidate=$(command -v python3 || command -v python) || { echo "setup: no python3 or python on PATH" >&2; exit 1; }
fi
read -r state python < <("$candidate" -c '
import os, sys, sysconfig
managed = sys.prefix == sys.base_prefix and os.path.isfile(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
print("managed" if managed else "ok", sys.executable)') || { echo "setup: cannot run $candidate" >&2; exit 1; }
[[ -n "${python:-}" ]] || { echo "setup: cannot run $candidate" >&2; exit 1; }

if [[ "${1:-}" == "--python" ]]; then
    [[ "$state" == managed ]] && python=$root/.venv/bin/python
    echo "$python"
    exit 0
fi

if [[ "$state" == managed ]]; then
    echo "setup: $python is externally managed (PEP 668): creating a project virtual environment, .venv/, and installing there"
    "$python" -m venv .venv || { echo "setup: cannot create .venv/ with $python (on Debian/Ubuntu: apt-get install python3-venv)" >&2; exit 1; }
    python=$root/.venv/bin/python
fi
prefix=$("$python" -c 'import sys; print(sys.prefix)')
echo "setup: installing torch==2.13.0 and drzero (editable, with [dev]) into $prefix"
pip_install() {  # pip -q, less one warning per package that a file:// extra index lacks (the project machines' pip.conf)
    "$python" -m pip install -q "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
pip_install torch==2.13.0
pip_install -e ".[dev]"
if command -v pyenv >/dev/null; then pyenv rehash 2>/dev/null || true; fi  # pyenv's shim for a new console script

bin=$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
on_path=$(command -v drzero || true)
if [[ "$on_path" == "$bin/drzero" || "$on_path" == */shims/drzero ]]; then
    echo "setup: done: drzero is $bin/drzero"
elif [[ "$python" == "$root/.venv/bin/python" && -n "${DRZERO_SETUP_SOURCED:-}" ]]; then
    echo "setup: done: drzero is $bin/drzero"  # the sourcing shell activates .venv/
elif [[ "$python" == "$root/.venv/bin/python" ]]; then
    echo "setup: done: drzero is $bin/drzero, not on your PATH: run \`source .venv/bin/activate\` (or set up with \`source scripts/setup.sh\`)"
else
    echo "setup: done: drzero is $bin/drzero, not first on your PATH (that is ${on_path:-nothing}): put $bin first"
fi
