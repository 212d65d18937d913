"""What a separation needs to know about a model, whichever runtime holds its network.

:class:`ModelInfo` is shared by a torch model file (:class:`~vocalsep.checkpoint.ModelBundle`) and an
exported ONNX file (:class:`~vocalsep.onnx_model.OnnxModel`): the feature settings, the stems, the
network's heads, the voice rule and the separation defaults, plus the training summary. Each
subclass adds ``network(device, threads)``: a callable from raw log-mel ``(batch, frames, bands)`` to
``{head: array}``, the only step the two runtimes do differently.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import re

import numpy as np

from .choices import STEMS
from .errors import STEM_NAME
from .features import SILENCE_DB, FeatureConfig

Network = Callable[[np.ndarray, tuple], dict]  # (logmel (batch, frames, bands), heads) -> {head: float32 array}


@dataclass(kw_only=True)
class ModelInfo:
    features: FeatureConfig
    arch: str
    model_kwargs: dict
    voice_rule: dict | None = None  # {"vocals": [D floats], "accompaniment": [D floats]}
    stems: tuple[str, ...] = STEMS
    training: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    # separation defaults chosen for this model: {"postfilter": False}, or per mask source {"postfilter": {"head": False}}
    separation: dict = field(default_factory=dict)

    runtime = ""  # "torch" or "onnx", set by each subclass

    @property
    def heads(self) -> tuple[str, ...]:
        """The network's outputs: ``embedding`` and/or ``mask``."""
        raise NotImplementedError

    @property
    def silence_db(self) -> float:
        """Bins this far below a chunk's loudest are left out of clustering: the threshold the model was
        trained with, from the file's separation settings (:data:`~vocalsep.features.SILENCE_DB` for a
        bundle built by hand without one)."""
        return float(self.separation.get("silence_db", SILENCE_DB))

    def postfilter_default(self, mask_from: str) -> bool:
        """Whether this model's file asks for the post-filter on masks from ``mask_from`` (yes when silent)."""
        chosen = self.separation.get("postfilter", True)
        return bool(chosen.get(mask_from, True) if isinstance(chosen, dict) else chosen)

    def network(self, device: str = "cpu", threads: int | None = None) -> Network:
        raise NotImplementedError


def info_problem(stems, rule, separation) -> str | None:
    """What is wrong with a model file's stems, voice rule or separation defaults (None: nothing)."""
    if not (isinstance(stems, (list, tuple)) and all(isinstance(s, str) and re.match(STEM_NAME, s) for s in stems)
            and sorted(stems) == sorted(STEMS)):
        return f"stems {stems!r} must be {' and '.join(STEMS)}"
    if rule is not None and not (isinstance(rule, dict) and set(rule) == set(STEMS) and all(
            isinstance(v, list) and 0 < len(v) <= 4096 and all(isinstance(e, (int, float)) for e in v)
            for v in rule.values())):
        return "voice_rule must map vocals and accompaniment to lists of numbers"
    if not _valid_separation(separation):
        return (f"malformed separation defaults {separation!r}; expected e.g. "
                "{'postfilter': False}, {'postfilter': {'head': False}}, {'silence_db': 40.0}")
    return None


def _valid_separation(sep) -> bool:
    if not isinstance(sep, dict):
        return False
    if "silence_db" in sep and not (isinstance(sep["silence_db"], (int, float)) and not isinstance(sep["silence_db"], bool)
                                    and 0 < sep["silence_db"] <= 200):
        return False
    pf = sep.get("postfilter", False)
    if isinstance(pf, dict):
        return all(isinstance(k, str) and isinstance(v, bool) for k, v in pf.items())
    return isinstance(pf, bool)
