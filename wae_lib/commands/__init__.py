"""The commands of ``python -m wae_lib``: one module per command, named for it (``train`` is commands/train.py,
``eval-cache`` commands/eval_cache.py), each ``add_arguments(parser)`` and ``run(args)`` and nothing else of the
library: the contract and the exit statuses are wae_lib.command, the table of commands wae_lib/__main__.py.

The top layer (the import rules: wae_lib/__init__.py).
"""
