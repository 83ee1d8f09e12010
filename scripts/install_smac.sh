#!/usr/bin/env bash
# Install the StarCraft Multi-Agent Challenge (`smac`, from git) and pysc2 for `env=sc2`
# WITHOUT their pins: SMAC's setup.py wants protobuf<3.21 (it breaks wandb) and pysc2 4.0
# wants enum34 (it shadows the stdlib enum on Python >= 3.6). Both are installed with
# --no-deps and their other dependencies are listed here; marl/envs/sc2.py sets
# PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python before importing them, which lets SC2's
# old protocol files load with today's protobuf.
#
#   make install-smac                 # or: bash scripts/install_smac.sh
#   PYTHON=.venv/bin/python make install-smac
#   FORCE=1 make install-smac         # reinstall smac even if it is already there
#
# Idempotent: run it again and it only checks. It needs GitHub for smac (not on PyPI:
# PyPI's `smac` is SMAC3, a hyperparameter optimiser with the same import name, which
# this script uninstalls if it finds it). StarCraft II itself is not a pip package: the
# script ends by printing how to install the game and the SMAC maps.
set -euo pipefail

PYTHON="${PYTHON:-python}"
SMAC_GIT="${SMAC_GIT:-git+https://github.com/oxwhirl/smac.git}"
FORCE="${FORCE:-0}"
export PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="${PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION:-python}"

# pysc2 4.0's and SMAC's requirements, less protobuf<3.21 (we keep the installed protobuf),
# enum34 (breaks the stdlib enum) and sk-video (video recording; SMAC never uses it).
DEPS=(
    "absl-py>=0.1.0"
    "s2clientprotocol>=4.10.1.75800.0"
    "s2protocol"
    "numpy"
    "pygame>=2"
    "deepdiff"
    "dm-env"
    "dm-env-rpc"
    "mock"
    "mpyq"
    "portpicker>=1.2.0"
    "requests"
    "typing-extensions"
    "websocket-client"
)

pip_install() { "$PYTHON" -m pip install --disable-pip-version-check "$@"; }

smac_state() {
    # "challenge": the StarCraft SMAC; "other": another `smac` (SMAC3); "none". Reads the
    # installed files only (importing smac could fail for reasons this script fixes).
    "$PYTHON" - <<'EOF'
import importlib.util
import os

spec = importlib.util.find_spec("smac")
if spec is None:
    print("none")
else:
    found = [
        os.path.isfile(os.path.join(folder, "env", "starcraft2", "starcraft2.py"))
        for folder in spec.submodule_search_locations or []
    ]
    print("challenge" if any(found) else "other")
EOF
}

echo "== Python: $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"

echo "== dependencies of smac and pysc2 (no protobuf<3.21, no enum34)"
pip_install "${DEPS[@]}"

echo "== pysc2 (--no-deps)"
if "$PYTHON" -c "import importlib.util as u, sys; sys.exit(u.find_spec('pysc2') is None)" \
    && [ "$FORCE" != 1 ]; then
    echo "pysc2 is installed: $("$PYTHON" -m pip show pysc2 2>/dev/null | grep -m1 '^Version')"
else
    pip_install --no-deps "pysc2>=3.0.0"
fi

echo "== smac, the StarCraft Multi-Agent Challenge (--no-deps, from git)"
state="$(smac_state)"
if [ "$state" = other ]; then
    echo "The installed 'smac' is not the StarCraft Multi-Agent Challenge (PyPI's smac is"
    echo "SMAC3, a hyperparameter optimiser, with the same import name): uninstalling it."
    "$PYTHON" -m pip uninstall --yes smac
    state=none
fi
if [ "$state" = challenge ] && [ "$FORCE" != 1 ]; then
    echo "smac (StarCraft Multi-Agent Challenge) is installed; FORCE=1 reinstalls it."
else
    pip_install --no-deps --force-reinstall "$SMAC_GIT"
fi

if "$PYTHON" -m pip show enum34 >/dev/null 2>&1; then
    echo "== removing enum34 (it shadows the standard library's enum)"
    "$PYTHON" -m pip uninstall --yes enum34
fi

echo "== checking that smac imports (PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python)"
"$PYTHON" -c "
from smac.env.starcraft2.starcraft2 import StarCraft2Env
env = StarCraft2Env(map_name='3m')
print('smac OK:', {k: env.get_env_info()[k] for k in ('n_agents', 'n_actions', 'episode_limit')})
"

sc2path="${SC2PATH:-$HOME/StarCraftII}"
sc2parent="$(dirname "$sc2path")"
cat <<EOF

== StarCraft II (not installed by this script)
smac is installed. SMAC also needs the StarCraft II game (Linux headless build) and the
SMAC maps, which pip cannot install:

  1. Download a Linux package from https://github.com/Blizzard/s2client-proto#downloads
     (https://blzdistsc2-a.akamaihd.net/Linux/SC2.<version>.zip): SC2.4.10.zip as PyMARL,
     or SC2.4.6.2.69232.zip as the SMAC paper. Results differ between versions; marl logs
     the version of every run.
  2. Unzip it (the password, accepting Blizzard's AI and Machine Learning licence, is
     iagreetotheeula):  unzip -P iagreetotheeula SC2.4.10.zip -d "$sc2parent"
  3. Point SC2PATH at it (pysc2 looks in ~/StarCraftII otherwise):
       export SC2PATH=$sc2path
  4. Add the maps:
       wget https://github.com/oxwhirl/smac/releases/download/v0.1-beta1/SMAC_Maps.zip
       unzip SMAC_Maps.zip -d "\$SC2PATH/Maps/"     # gives \$SC2PATH/Maps/SMAC_Maps/*.SC2Map
  5. Check:  marl-train env=sc2 env.map_name=3m t_max=1000 batch_size_run=1

EOF
if [ -d "$sc2path/Versions" ]; then
    echo "StarCraft II found in $sc2path: $(ls "$sc2path/Versions" | tr '\n' ' ')"
    if [ -d "$sc2path/Maps/SMAC_Maps" ]; then
        echo "SMAC maps found in $sc2path/Maps/SMAC_Maps."
    else
        echo "SMAC maps missing: step 4."
    fi
else
    echo "StarCraft II not found in $sc2path (no Versions/ folder): steps 1-4."
fi
