"""``ray.data.preprocessor``: the module path of :class:`Preprocessor` in Ray 2.2."""

from raylite.data.preprocessors._base import Preprocessor, PreprocessorNotFittedException

__all__ = ["Preprocessor", "PreprocessorNotFittedException"]
