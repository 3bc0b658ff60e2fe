"""Comparison baselines (issue 9) at our 64x64 resolution, on the same frozen VGG16 as our model.

Every method is an object with ``transfer(content, style, alpha=1.0)``: content N x 3 x 64 x 64 RGB in
[0, 1], style 1 image (applied to all) or N (pairwise); the output is N x 3 x 64 x 64 in [0, 1].

- ``reinhard``: Reinhard, Ashikhmin, Gooch & Shirley (2001), "Color transfer between images" - the floor
  (wae_lib.eval.color.reinhard_transfer; alpha blends with the content in RGB).
- ``gatys``: Gatys, Ecker & Bethge (2016), "Image style transfer using convolutional neural networks" -
  L-BFGS optimisation of the image, a fixed iteration budget (alpha scales the style weight).
- ``adain``: Huang & Belongie (2017), "Arbitrary style transfer in real-time with adaptive instance
  normalization" - VGG encoder to relu3_1, AdaIN, a trained decoder (alpha interpolates the features).
- ``wct``: Li, Fang, Yang, Wang, Lu & Yang (2017), "Universal style transfer via feature transforms" -
  whitening and colouring at relu3_1 -> relu2_1 -> relu1_1 (coarse to fine), one trained decoder per level
  (alpha interpolates the features at every level, as Li et al.).

Layers at 64 px: relu3_1 is 16x16, relu4_1 would be 8x8 (64 positions for 512 channels: a rank-64 Gram/
covariance estimate and 8x8 AdaIN statistics), and the HED stand-in is documented close to ImageNet VGG16
up to relu3 only (wae_lib.model.vgg). So every method stops at relu3_1, and the style layers are our
model's (relu1_1..relu3_1, config.STYLE_LAYERS_DEFAULT): the style distance the comparison reports is the one each
method optimises.

One file per method (reinhard, gatys, adain, wct); what they share is :mod:`wae_lib.baselines.common`, the registry
and the weights loading :mod:`wae_lib.baselines.build`. AdaIN's and WCT's decoders are trained on our training
set by :mod:`wae_lib.baselines.train` (``python -m wae_lib baselines``; config and losses: ``train_config``,
``train_losses``) and shipped in wae_lib/weights by :mod:`wae_lib.baselines.shipped` (``ship-baselines``).

The import rules: wae_lib/__init__.py.
"""
