"""The user's tools and the device plumbing: ``python -m wae_lib transfer``, notebook 00's explorer, exporting the
shipped model, the prepared call of a lent GPU (bundle, stages, what travels), notebooks run without Jupyter and
the kernel's cell heartbeat.

The top layer (the import rules: wae_lib/__init__.py).
"""
