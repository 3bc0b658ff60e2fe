#!/bin/bash
# issue 33 leftovers, sequential, one torch process at a time
set -x
cd /work/main
export OMP_NUM_THREADS=2
PY=.venv/bin/python
D=/tmp/dl-sets-base
date
$PY -m wae_lib scorecard pretrained pretrained-paper adain wct gatys --gatys-steps 20 --data-root $D --size 64 --out logs/sc/scorecard_64px.csv --replace
date
$PY -m wae_lib scorecard pretrained pretrained-paper adain wct --data-root $D --size 128 --out logs/sc/scorecard_128px.csv --replace
date
$PY benchmarks/bench_transfer.py --sizes 64 128 256 --gatys-steps 20 --gatys-batches 1 --threads 2 2>&1 | tee logs/sc/bench33.txt
date
$PY -m wae_lib train --profile spatial --data mixed --data-root $D --vgg-source hed --content-map 16 --content-dim 8 \
   --w-cycle 0.5 --out models/ablation-cycle/map16x8_cycle
date
$PY -m wae_lib export models/ablation-cycle --data-root $D --out models/ablation-cycle/best.pt
date
