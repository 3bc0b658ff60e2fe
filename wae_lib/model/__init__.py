"""The networks and reading them back: the frozen VGG16, the content/style encoders and the decoder, WAEStyle, the
losses, the checkpoint format, the shipped models and a run folder's model (``load_model``).

The import rules: wae_lib/__init__.py.
"""
