#!/usr/bin/env bash
# The GPU checks of the speed work on a lent CUDA machine, in stages (at most 10 minutes in all):
#   1. `pytest -m gpu`: device rollouts never wait for the GPU inside a step, CUDA graphs
#      (learner.compile=reduce-overhead) give the same updates as eager, and every
#      algorithm trains end to end on CUDA;
#   2. bench_train.py on CUDA: battle 3m and 3s5z at B = 64, then 3m with the compiled
#      game loop (env.compile) and CUDA graphs (learner.compile=reduce-overhead);
#   3. time_to_win.py on CUDA: QMIX (qmix_tuned) on battle 3m to 90% test wins.
#
# The machine has PyTorch but not Hydra, and no network. Prepare the wheels here first:
#     make gpu-wheels                  # hydra-core, omegaconf, antlr4 into .whl/ (git-ignored)
# then run this there with `.whl` carried along; results go to $OUT (default ./gpu_out):
# gpu.txt, gpu_tests.log, bench.jsonl, time_to_win.log. Name the stages to run (default all);
# a device call is limited to 10 minutes, so two calls fit with room to spare:
#     bash scripts/gpu_check.sh tests bench      # at most 7.5 minutes
#     bash scripts/gpu_check.sh ttw              # at most 2.5 minutes
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
STAGES=" ${*:-tests bench ttw} "

if [ -d .whl ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
# An uninstalled checkout: map conf/ to marl.conf, as the package build does.
if ! $PY -c "import marl.conf" 2>/dev/null; then
    ln -s ../conf marl/conf && trap 'rm -f marl/conf' EXIT
fi

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    nproc
} 2>&1 | tee "$OUT/gpu.txt"

if [[ $STAGES == *" tests "* ]]; then
    echo "== pytest -m gpu"
    # Only the files with GPU tests: the others may import packages the machine lacks.
    mapfile -t GPU_TESTS < <(grep -rl "mark.gpu" tests --include="test_*.py")
    timeout 180 $PY -m pytest -q -m gpu -p no:cacheprovider -rs "${GPU_TESTS[@]}" 2>&1 |
        tee "$OUT/gpu_tests.log"
fi

if [[ $STAGES == *" bench "* ]]; then
    echo "== bench_train on cuda"
    BENCH=(--repeats 1 --updates 100 --override device=cuda)
    timeout 120 $PY scripts/bench_train.py "${BENCH[@]}" \
        --config qmix_battle_3m_b64 --config qmix_battle_3s5z_b64 2>&1 | tee "$OUT/bench.jsonl"
    timeout 150 $PY scripts/bench_train.py "${BENCH[@]}" --override env.compile=true \
        --override learner.compile=reduce-overhead --config qmix_battle_3m_b64 2>&1 |
        tee -a "$OUT/bench.jsonl"
fi

if [[ $STAGES == *" ttw "* ]]; then
    echo "== time to 90% test wins on battle 3m, cuda"
    # The CPU figure's settings (8 env copies, one update per runner batch), on CUDA.
    timeout 150 $PY scripts/time_to_win.py --override device=cuda 2>&1 | tail -5 |
        tee "$OUT/time_to_win.log"
fi
