"""Training: the loop (Trainer), ``train`` and the sweep of a profile, loss balancing and schedules, DDP helpers.

``python -m wae_lib train`` is :mod:`wae_lib.train.cli`. Imports the foundation, wae_lib.data and wae_lib.model.
"""
