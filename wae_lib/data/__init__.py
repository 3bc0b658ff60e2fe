"""The datasets: the data folder's layout and set names, decoding and face crops, the per-source preparation, the
packed sets and their splits, the embedded sample set, notebook 01's views and the training loader.

``python -m wae_lib data`` is :mod:`wae_lib.data.cli`. Imports only the foundation (wae_lib.config, params, utils,
staleness). Kept light: importing the package imports nothing (its preparation modules do not import torch).
"""
