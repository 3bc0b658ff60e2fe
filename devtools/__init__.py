"""The repository's own tooling for maintaining the study, outside the ``wae_lib`` package that users install: the
prepared call of a lent GPU (``device``: bundle, stages, what travels) and the notebook runners the Makefile uses
(``papermill`` with the parameters checked first, ``headless`` without Jupyter, the kernel's cell heartbeat).

    python -m devtools device pack|run|unpack|reports|travel ...
    python -m devtools headless NOTEBOOK [-p NAME VALUE ...]
    python -m devtools papermill IN OUT [papermill's options]

Run from the repository root (the Makefile does); tests/test_device_*.py, test_headless.py, test_run_notebook.py
and test_staleness.py test them.
"""
