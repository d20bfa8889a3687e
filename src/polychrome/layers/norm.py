"""GroupNorm with a group count that always divides the channels."""

from __future__ import annotations

import math

from torch import nn


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    """GroupNorm(g, channels) with g = gcd(groups, channels): 32 groups at the usual widths (64, 128, ...),
    fewer for the narrow test-size variants, whose widths need not be multiples of 32.

    GroupNorm rather than BatchNorm in the colourisers: its statistics are per image, so a photo's
    colours do not depend on its batch-mates, and CPU batches of 2-8 photos train as well as big ones."""
    return nn.GroupNorm(math.gcd(groups, channels), channels)
