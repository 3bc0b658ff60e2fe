"""What people read: the figures and plots, claims.md and the reports folders' index.md, notebook 07's comparison
and the two trainings side by side.

``python -m wae_lib both-trainings``. The import rules: wae_lib/__init__.py.
"""
