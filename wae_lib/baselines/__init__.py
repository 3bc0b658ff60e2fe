"""The comparison baselines at 64 px on our VGG16, one method per file (Reinhard, Gatys, AdaIN, WCT), their decoders'
training and the decoders shipped in wae_lib/weights.

``python -m wae_lib baselines`` / ``ship-baselines``. Imports every layer below it (foundation to eval).
"""
