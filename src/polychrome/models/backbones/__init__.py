"""Encoders the colourisers are built on, with their ImageNet weight loading: EfficientNet-Lite0
(:mod:`~polychrome.models.backbones.efficientnet`) and a one-channel GroupNorm ResNet-18/34
(:mod:`~polychrome.models.backbones.resnet`)."""
