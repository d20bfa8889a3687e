"""One shape check for tensors and arrays, in the spirit of kornia's ``KORNIA_CHECK_SHAPE``.

A pattern is the dimensions written out with spaces, ``"B 2 H W"``: a number must be that size, a name
stands for any size (the same size wherever it repeats, and the size given for it by keyword), and a
leading ``...`` stands for any number of leading dimensions. A mismatch is one ValueError that names the
argument, the shape it must have and the shape it has.
"""

from __future__ import annotations

__all__ = ["check_shape"]


def check_shape(x, pattern: str, name: str = "input", **sizes: int) -> dict[str, int]:
    """ValueError unless ``x.shape`` matches ``pattern`` (see the module docstring); returns the size each
    name in the pattern took.

    >>> check_shape(torch.zeros(4, 2, 8, 9), "B 2 H W", "ab")
    {'B': 4, 'H': 8, 'W': 9}
    >>> check_shape(torch.zeros(4, 1, 8, 9), "B 2 H W", "ab", H=8)
    ValueError: ab must have shape (B, 2, 8, W), got (4, 1, 8, 9)
    """
    dims = pattern.split()
    any_lead = bool(dims) and dims[0] == "..."
    if any_lead:
        dims = dims[1:]
    shape = tuple(x.shape)
    bound = dict(sizes)
    fits = len(shape) >= len(dims) if any_lead else len(shape) == len(dims)
    if fits:
        for dim, size in zip(dims, shape[len(shape) - len(dims) :]):
            if dim.isdigit():
                fits = size == int(dim)
            else:
                fits = bound.setdefault(dim, size) == size
            if not fits:
                break
    if not fits:
        wanted = ["..."] * any_lead + [str(sizes.get(d, d)) for d in dims]
        raise ValueError(f"{name} must have shape ({', '.join(wanted)}), got {shape}")
    return {d: bound[d] for d in dims if not d.isdigit()}
