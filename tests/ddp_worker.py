"""Run by test_train.py under torchrun (2 gloo processes) and as a single process: trains a few steps and
saves this rank's final weights to OUT/rank<r>.pt, so the test can compare ranks and process counts."""

import sys
from pathlib import Path

import torch

from wae_lib.config import profile_config
from wae_lib.train.distributed import init_distributed
from wae_lib.train.trainer import Trainer
from wae_lib.utils import set_seed

data, out, steps = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
cfg = profile_config("smoke", data=data, steps=steps, batch_size=8, sample_every=0, device="cpu")
info = init_distributed("cpu")
set_seed(cfg.seed)
out.mkdir(parents=True, exist_ok=True)
trainer = Trainer(cfg, out, info)
if info.rank == 0:
    torch.save(trainer.model.state_dict(), out / "init.pt")
trainer.run()
torch.save(trainer.model.state_dict(), out / f"rank{info.rank}.pt")
if info.world > 1:
    torch.distributed.destroy_process_group()
