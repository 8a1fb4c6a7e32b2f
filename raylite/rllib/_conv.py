"""Convolutions for image observations (``model: conv_filters, conv_activation``), written
once against the ``ops`` namespace like ``_model``'s dense layers.

    flat obs [batch, H*W*C] ──reshape──> [batch, H, W, C]
        ──conv_0 (same padding) ... conv_n-1 (valid padding), conv_activation──> flatten
        ──> features [batch, conv_output_size(...)]

As RLlib's vision network: each filter is ``[out_channels, kernel, stride]`` (kernel and
stride an int or ``[height, width]``); every layer pads "same" (TensorFlow's rule) but the
last, which pads "valid". Kernels are ``[kh, kw, in, out]`` (NHWC), the same arrays on numpy,
torch and TensorFlow. ``conv_filters: None`` takes RLlib's default stack for the image size.
"""

from __future__ import annotations

import math
from typing import Any

from raylite.rllib._distributions import activation

#: RLlib's default filter stacks (``ray.rllib.models.utils.get_filter_config``), by (H, W)
DEFAULT_FILTERS = {
    (96, 96): [[16, [8, 8], 4], [32, [4, 4], 2], [256, [11, 11], 2]],
    (84, 84): [[16, [8, 8], 4], [32, [4, 4], 2], [256, [11, 11], 1]],
    (64, 64): [[16, [4, 4], 2], [32, [4, 4], 2], [64, [4, 4], 2], [128, [4, 4], 2]],
    (42, 42): [[16, [4, 4], 2], [32, [4, 4], 2], [256, [11, 11], 1]],
    (10, 10): [[16, [5, 5], 2], [32, [5, 5], 2]],
}

Filter = tuple[int, tuple[int, int], tuple[int, int]]


def is_image(space: Any) -> bool:
    """A Box of rank 3 (height, width, channels): what the conv net takes."""
    from gymnasium import spaces
    return isinstance(space, spaces.Box) and len(space.shape) == 3


def image_filters(obs_shape: tuple[int, ...], conv_filters: Any) -> tuple[Filter, ...]:
    """The filters for an image of ``obs_shape`` (H, W, C): the given ones, else RLlib's
    default for that size; ValueError naming ``conv_filters`` when there is none."""
    if conv_filters is None:
        default = DEFAULT_FILTERS.get(tuple(obs_shape[:2]))
        if default is None:
            sizes = ", ".join(f"[{h}, {w}, C]" for h, w in DEFAULT_FILTERS)
            raise ValueError(f"no default conv_filters for image observations of shape "
                             f"{list(obs_shape)}: set model={{'conv_filters': [[out_channels, "
                             f"kernel, stride], ...]}} (defaults exist for {sizes})")
        conv_filters = default
    filters = normalize_filters(conv_filters)
    height, width = conv_output_shape(obs_shape, filters)[:2]
    if height < 1 or width < 1:
        raise ValueError(f"conv_filters {conv_filters} shrink the {list(obs_shape)} image to "
                         f"nothing: use smaller kernels or strides")
    return filters


def normalize_filters(conv_filters: Any) -> tuple[Filter, ...]:
    """``[[out, kernel, stride], ...]`` as ``((out, (kh, kw), (sh, sw)), ...)``."""
    def pair(value: Any) -> tuple[int, int]:
        return (int(value), int(value)) if isinstance(value, int) else (int(value[0]),
                                                                       int(value[1]))
    try:
        return tuple((int(out), pair(kernel), pair(stride))
                     for out, kernel, stride in conv_filters)
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"conv_filters must be a list of [out_channels, kernel, stride] "
                         f"(kernel, stride: an int or [height, width]), got "
                         f"{conv_filters!r}") from None


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding of one axis: (before, after)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_output_shape(obs_shape: tuple[int, ...], filters: tuple[Filter, ...]
                      ) -> tuple[int, int, int]:
    height, width, channels = obs_shape
    for i, (out, (kh, kw), (sh, sw)) in enumerate(filters):
        if i < len(filters) - 1:   # same
            height, width = math.ceil(height / sh), math.ceil(width / sw)
        else:                      # valid
            height, width = (height - kh) // sh + 1, (width - kw) // sw + 1
        channels = out
    return height, width, channels


def conv_output_size(obs_shape: tuple[int, ...], filters: tuple[Filter, ...]) -> int:
    height, width, channels = conv_output_shape(obs_shape, filters)
    return height * width * channels


def conv_shapes(prefix: str, obs_shape: tuple[int, ...], filters: tuple[Filter, ...]
                ) -> dict[str, tuple[int, ...]]:
    """Shapes of the layers ``prefix/conv_i`` (kernel ``[kh, kw, in, out]``, bias)."""
    shapes: dict[str, tuple[int, ...]] = {}
    channels = obs_shape[2]
    for i, (out, (kh, kw), _) in enumerate(filters):
        shapes[f"{prefix}/conv_{i}/kernel"] = (kh, kw, channels, out)
        shapes[f"{prefix}/conv_{i}/bias"] = (out,)
        channels = out
    return shapes


def conv_tower(ops: Any, params: dict[str, Any], prefix: str, flat_obs: Any,
               obs_shape: tuple[int, ...], filters: tuple[Filter, ...],
               activation_name: str) -> Any:
    """The forward pass of :func:`conv_shapes`'s layers: flat observations in, flat
    features out."""
    act = activation(ops, activation_name)
    x = ops.reshape(flat_obs, (-1,) + tuple(obs_shape))
    for i, (_, _, stride) in enumerate(filters):
        padding = "valid" if i == len(filters) - 1 else "same"
        x = act(ops.conv2d(x, params[f"{prefix}/conv_{i}/kernel"], stride, padding)
                + params[f"{prefix}/conv_{i}/bias"])
    return ops.reshape(x, (-1, conv_output_size(obs_shape, filters)))


def image_fields(model: Any, observation_space: Any) -> dict[str, Any]:
    """A network spec's image fields (``obs_shape``, ``conv_filters``, ``conv_activation``)
    for an image observation space, from the ``model`` config; ``{}`` for other spaces (a
    dense network, as RLlib, whatever ``conv_filters`` says)."""
    if not is_image(observation_space):
        return {}
    shape = tuple(int(n) for n in observation_space.shape)
    return {"obs_shape": shape, "conv_filters": image_filters(shape, model.conv_filters),
            "conv_activation": model.conv_activation}
