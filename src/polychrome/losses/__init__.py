"""Training losses, one module per family:

- :mod:`~polychrome.losses.regression`: ab L1 / smooth-L1, the diversity term;
- :mod:`~polychrome.losses.perceptual`: the frozen feature networks (EfficientNet-Lite0, VGG16 from a file);
- :mod:`~polychrome.losses.composite`: :class:`ColorizationLoss`, RGB + perceptual + ab + diversity;
- :mod:`~polychrome.losses.classification`: rebalanced / focal cross-entropy over ab bins, histogram and
  confidence losses (the cicgan family);
- :mod:`~polychrome.losses.adversarial`: hinge losses and feature matching for the PatchGAN critic.
"""

from polychrome.losses.adversarial import feature_matching_loss, hinge_d_loss, hinge_g_loss
from polychrome.losses.classification import (
    CONFIDENCE_TAU,
    class_loss,
    confidence_loss,
    confidence_target,
    histogram_loss,
)
from polychrome.losses.composite import ColorizationLoss
from polychrome.losses.perceptual import Lite0Features, VGG16Features, load_vgg16_features, vgg16_features_state
from polychrome.losses.regression import DIVERSITY_EPS, ab_loss, diversity_loss

__all__ = [
    "CONFIDENCE_TAU", "DIVERSITY_EPS", "ColorizationLoss", "Lite0Features", "VGG16Features", "ab_loss",
    "class_loss", "confidence_loss", "confidence_target", "diversity_loss", "feature_matching_loss",
    "hinge_d_loss", "hinge_g_loss", "histogram_loss", "load_vgg16_features", "vgg16_features_state",
]
