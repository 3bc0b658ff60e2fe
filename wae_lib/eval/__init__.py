"""Evaluation: the evaluation images, the per-run cache of the models' outputs, a sweep's runs, the metrics (pixel,
VGG, identity, colour, retrieval, FID/KID), bootstrap statistics, the notebooks' tables, the held-out scorecard and
the paper's claims as verdicts.

``python -m wae_lib eval-cache`` is :mod:`wae_lib.eval.cache`. Imports the foundation, data, model and train.
"""
