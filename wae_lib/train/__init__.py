"""Training: the loop (Trainer), ``train`` and the sweep of a profile, loss balancing and schedules, DDP helpers.

``python -m wae_lib train`` is :mod:`wae_lib.commands.train`; a run folder is :mod:`wae_lib.train.run_folder`. The import rules: wae_lib/__init__.py.
"""
