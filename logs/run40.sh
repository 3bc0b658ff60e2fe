#!/bin/bash
# issue 33: the paper's 10 models under both trainings on the held-out scorecard (frontier), sequential
set -x
export OMP_NUM_THREADS=2 PYTHONPATH=/tmp/wt40
PY=/work/main/.venv/bin/python
D=/work/main/data/processed/shared-data-large
cd /tmp/wt40
date
[ -f $D/sets/info.json ] || $PY -m wae_lib data all --data-dir /work/shared/data-large --imagenet-extra-crops 7 --data-root $D || exit 1
for P in reference ours; do
  date
  M=/work/main/models/$P-shared-data-large
  $PY -m wae_lib train sweep --profile $P --models-dir $M --data-root $D || exit 1
  date
  $PY -m wae_lib scorecard $M/*_c* --data-root $D --size 64 --out /work/main/logs/sc/scorecard_$P.csv --replace || exit 1
  date
done
