"""Evaluation: the numbers behind Figures 5-7 and the claims C1-C4 of a trained sweep, one concern per module:

* ``wae_lib.eval.runs``: the sweep's runs in the paper's order (their models: wae_lib.model.run), the
  :class:`~wae_lib.eval.runs.EvalContext` every caption and table carries;
* ``wae_lib.eval.images``: the evaluation images (:class:`EvalImages`: a set's images with the rows of the
  set file they are), the images and styles the figures show, the mean face, the faces' identities;
* ``wae_lib.eval.cache``: the models' outputs on them (latents, reconstructions, transfers), computed from the
  models or read from the cache that ``python -m wae_lib eval-cache`` writes once per sweep;
* ``wae_lib.eval.metrics``: per-image metrics (MSE, PSNR, SSIM, VGG distances, the face detector);
* ``wae_lib.eval.tables``: the notebooks' tables (one row per image or pair, with context columns) and the C4
  balance ranking; ``wae_lib.eval.fid``: FID and KID; ``wae_lib.eval.stats``: bootstrap intervals and ranks;
* ``wae_lib.eval.identity``, ``color``, ``retrieval``: dlib face identity, CIELAB colour distance and Reinhard's
  transfer, style and content retrieval with their chance levels;
* ``wae_lib.eval.scorecard``: one model's held-out scorecard; ``wae_lib.eval.claims`` and ``verdicts``: the paper's
  claims C1-C4 as verdicts with their numbers.

``python -m wae_lib eval-cache`` (wae_lib.commands.eval_cache) fills :mod:`wae_lib.eval.cache`. The import rules: wae_lib/__init__.py.
"""
