#!/usr/bin/env bash
# Build (once) and cache a wheel of MMCV 2.1.0 with its compiled ops, for CPU.
#
# MMDetection 3.3.0 needs the full MMCV (with ``mmcv._ext``) below 2.2.0, and
# PyPI has no Linux wheel of it, only a source distribution whose setup.py
# needs ``pkg_resources`` (gone from setuptools >= 82) and builds with
# ``-std=c++17`` (recent torch headers need C++20). This script fetches that
# source distribution, checks its sha256, patches the standard to C++20,
# builds the wheel against the torch of the current environment and caches it.
#
# Usage (inside the virtual environment that will use MMCV, with torch
# already installed):
#
#     pip install --find-links "$(bash tools/build_mmcv_wheel.sh)" \
#         --only-binary mmcv -r requirements/det.txt
#
# or ``pip install --find-links "$(bash tools/build_mmcv_wheel.sh)"
# --only-binary mmcv -e '.[det]'``.
#
# Interface:
#   stdout  exactly one line: the directory that holds the wheel
#           (``mmcv-2.1.0-<python tag>-<platform>.whl``); everything else,
#           including the build log, goes to stderr.
#   cache   $MMREVODE_WHEEL_CACHE (default ``$HOME/.cache/mmrevode/wheels``),
#           one subfolder per Python tag, platform and exact torch version,
#           e.g. ``cp311-linux_x86_64-torch2.14.1_cu130``, since the compiled
#           ops only work with the torch they were built against. A wheel
#           already there is reused without building (a few seconds).
#   env     PYTHON    interpreter of the target environment (default: python)
#           MAX_JOBS  parallel compile jobs (default: 2)
#   exit    non-zero with a message on stderr on any failure.
#
# A build takes 10 to 20 minutes on 2 cores and gives a wheel of about
# 31 MB. It installs ``setuptools<82`` and ``ninja`` into the target
# environment (a build without build isolation uses the environment's own
# setuptools); MMCV itself does not need them at run time.
set -euo pipefail

MMCV_VERSION=2.1.0
# sha256 of mmcv-2.1.0.tar.gz as published on PyPI.
MMCV_SDIST_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f

PYTHON=${PYTHON:-python}
CACHE_ROOT=${MMREVODE_WHEEL_CACHE:-$HOME/.cache/mmrevode/wheels}

log() { printf 'build_mmcv_wheel: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 \
    || die "no Python interpreter '$PYTHON'; activate the target virtual environment or set PYTHON"

# Cache key: Python tag, platform and full torch version (with its local
# part, e.g. 2.14.1+cu130, which the package metadata leaves out), read from
# torch/version.py without importing torch so that a cache hit stays fast.
key=$("$PYTHON" - <<'EOF'
import importlib.util, os, sys, sysconfig
spec = importlib.util.find_spec('torch')
if spec is None or not spec.submodule_search_locations:
    sys.exit('torch is not installed in this environment')
namespace = {}
version_file = os.path.join(spec.submodule_search_locations[0], 'version.py')
with open(version_file) as f:
    exec(f.read(), namespace)
torch_version = namespace['__version__']
tag = f'{sys.implementation.name[:2]}{sys.version_info[0]}{sys.version_info[1]}'
plat = sysconfig.get_platform().replace('-', '_').replace('.', '_')
print(f'{tag}-{plat}-torch{torch_version}'.replace('+', '_'))
EOF
) || die "cannot compute the cache key with '$PYTHON': torch must be installed first (e.g. pip install torch torchvision)"

dest="$CACHE_ROOT/$key"

find_wheel() {
    local f
    for f in "$dest"/mmcv-"$MMCV_VERSION"-*.whl; do
        if [[ -f "$f" ]]; then
            printf '%s\n' "$f"
            return 0
        fi
    done
    return 1
}

if wheel=$(find_wheel); then
    log "cached wheel: $wheel"
    printf '%s\n' "$dest"
    exit 0
fi

log "no cached wheel in $dest; building mmcv $MMCV_VERSION with CPU ops (10 to 20 minutes on 2 cores)"
"$PYTHON" -c 'import torch' \
    || die "torch is installed but does not import with '$PYTHON'"
command -v "${CXX:-c++}" >/dev/null 2>&1 \
    || die "no C++ compiler ('${CXX:-c++}') found; install one (e.g. g++)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/build_mmcv_wheel.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

log "installing build requirements into $("$PYTHON" -c 'import sys; print(sys.prefix)'): setuptools<82 ninja"
"$PYTHON" -m pip install 'setuptools<82' ninja >&2 \
    || die "could not install setuptools<82 and ninja"

# --no-build-isolation: preparing the sdist's metadata runs its setup.py,
# which fails in an isolated environment with the newest setuptools.
"$PYTHON" -m pip download --no-deps --no-binary :all: --no-build-isolation \
    -d "$tmp/sdist" "mmcv==$MMCV_VERSION" >&2 \
    || die "could not download the mmcv $MMCV_VERSION source distribution"
sdist="$tmp/sdist/mmcv-$MMCV_VERSION.tar.gz"
[[ -f "$sdist" ]] || die "expected $sdist after pip download"
"$PYTHON" - "$sdist" "$MMCV_SDIST_SHA256" <<'EOF' \
    || die "sha256 of $sdist does not match the published one"
import hashlib, sys
path, expected = sys.argv[1:]
with open(path, 'rb') as f:
    actual = hashlib.sha256(f.read()).hexdigest()
if actual != expected:
    sys.exit(f'got {actual}, expected {expected}')
EOF

tar -xzf "$sdist" -C "$tmp"
src="$tmp/mmcv-$MMCV_VERSION"
[[ -f "$src/setup.py" ]] || die "no setup.py in the unpacked source ($src)"
sed -i.orig 's/-std=c++17/-std=c++20/g' "$src/setup.py"
grep -q -- '-std=c++20' "$src/setup.py" \
    || die "patching -std=c++17 -> -std=c++20 in mmcv's setup.py changed nothing"

log "compiling (MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2})"
start=$SECONDS
MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
    "$PYTHON" -m pip wheel --no-build-isolation --no-deps -v \
    -w "$tmp/dist" "$src" >&2 \
    || die "building the mmcv wheel failed (see the log above)"
log "compiled in $((SECONDS - start)) s"

built=("$tmp"/dist/mmcv-"$MMCV_VERSION"-*.whl)
[[ -f "${built[0]}" ]] || die "pip wheel produced no mmcv-$MMCV_VERSION wheel"
"$PYTHON" - "${built[0]}" <<'EOF' \
    || die "the built wheel has no compiled ops (mmcv/_ext*)"
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
sys.exit(0 if any(n.startswith('mmcv/_ext') for n in names) else 1)
EOF

mkdir -p "$dest"
name=$(basename "${built[0]}")
# Copy under a temporary name, then rename, so that no reader ever sees a
# partial wheel.
cp "${built[0]}" "$dest/.$name.partial.$$"
mv "$dest/.$name.partial.$$" "$dest/$name"
log "cached wheel: $dest/$name ($(du -h "$dest/$name" | cut -f1))"
printf '%s\n' "$dest"
