"""Training configuration: typed settings, read from TOML with ``key=value`` overrides, and
validated (type and range of every setting, the names of every choice, the model's arguments and
size) before anything is built, read or written."""
from __future__ import annotations

import copy
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .data import RemixConfig
from .errors import VocalsepError, check_number
from .features import SILENCE_DB, FeatureConfig
from .models import ARCHITECTURES, check_model_args, model_args


class ConfigError(VocalsepError, ValueError):
    """A training configuration is malformed."""


MASK_TARGETS = ("ibm", "irm", "sa")
PRECISIONS = ("fp32", "bf16")


@dataclass
class PhaseConfig:
    chunk_frames: int = 100
    batch_size: int = 16
    steps_per_epoch: int = 200
    max_epochs: int = 100
    lr: float = 1e-3
    patience: int = 10  # stop after this many epochs without a better validation loss
    max_minutes: float = 0.0  # wall-clock budget for the phase (0: none)
    remix: dict = field(default_factory=dict)  # this phase's changes to the top-level [remix] settings
    keep_epochs: bool = False  # also write every epoch's weights to phaseN/epochs/ (for weight averaging)


@dataclass
class TrainConfig:
    seed: int = 0
    arch: str = "mirex2016"
    model: dict = field(default_factory=dict)  # size overrides: hidden, layers, emb_dim, dropout
    features: dict = field(default_factory=dict)
    dataset: str = "mir1k"  # mir1k, musdb, musdb-wav or dsd100
    data_root: str = ""
    train_set: str = ""  # mir1k: a manifest file (empty: every clip); musdb: a split (train); dsd100: Dev
    valid_set: str = ""  # the same kinds; empty: validate on the first 8 training clips' own mixtures
    remix: dict = field(default_factory=dict)
    pool: str = ""  # manifest of accompaniment-only tracks (remix.pool_prob draws from them); empty: none
    pool_root: str = ""  # the folder the pool manifest's paths are relative to
    voices: str = ""  # manifest of voice-only tracks (remix.voice_weights weighs their sources); empty: none
    voices_root: str = ""  # the folder the voice manifest's paths are relative to
    optimizer: str = "rmsprop"
    grad_clip: float = 5.0
    silence_db: float = SILENCE_DB  # bins more than this far below an example's loudest bin are left out of the loss
    mask_weight: float = 1.0  # weight of the mask-inference loss next to the deep clustering loss (Chimera)
    mask_target: str = "ibm"  # what a mask head learns: the ideal binary mask (ibm), ideal ratio mask (irm), or sa
    # (signal approximation: the masked mixture against the voice, each bin's error weighted by the mixture's
    # mel magnitude to the power sa_power; 2 = the error energy of the reconstruction, what SDR counts)
    sa_power: float = 2.0
    init_from: str = ""  # phase 1 starts from this model file's weights (heads it lacks start fresh)
    checkpoint_every: int = 50  # steps
    voice_rule_batches: int = 30
    threads: int = 0  # torch threads (0: leave as is)
    device: str = "auto"  # auto: this rank's CUDA GPU when there is one, else the CPU
    precision: str = "fp32"  # bf16: the network's training steps under bfloat16 autocast (weights, loss in fp32)
    phases: list = field(default_factory=lambda: [PhaseConfig(), PhaseConfig(chunk_frames=500, batch_size=4)])

    def to_dict(self) -> dict:
        d = asdict(self)
        return d

    def remix_for(self, phase: int) -> RemixConfig:
        """The remix settings of ``phase`` (1-based): the top-level [remix] with the phase's own changes."""
        return RemixConfig(**{**self.remix, **self.phases[phase - 1].remix})


def _set_dotted(d: dict, key: str, value) -> None:
    """``d[a][b][c] = value`` for ``key = "a.b.c"``: tables are entered by name and lists (``phases``)
    by index; a missing table is created, anything else in the way is a :class:`ConfigError`."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"override key {key!r} has an empty part; write it as name.name (phases.0.lr)")
    for depth, p in enumerate(parts):
        here = ".".join(parts[:depth]) or "the config"
        last = depth == len(parts) - 1
        if isinstance(d, list):
            if not p.isdigit() or int(p) >= len(d):
                raise ConfigError(f"override {key}: {here} is a list of {len(d)}; index it with 0 to {len(d) - 1} "
                                  f"(e.g. {'.'.join(parts[:depth] + ['0'] + parts[depth + 1:])}), not {p!r}")
            if last:
                d[int(p)] = value
                return
            d = d[int(p)]
        elif isinstance(d, dict):
            if last:
                d[p] = value
                return
            if p == "phases" and p not in d:
                raise ConfigError(f"override {key}: the config has no [[phases]] to index; set the whole list "
                                  "(phases=[{...}]) or use a config file that has them")
            d = d.setdefault(p, {})
        else:
            raise ConfigError(f"override {key}: {here} is a value ({d!r}), not a table; set {here} itself")


def _parse_value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def load_config(path: str | Path | None = None, overrides: list[str] | tuple = ()) -> TrainConfig:
    """Read a TOML config; ``overrides`` are ``key=value`` strings (``phases.0.lr=5e-4``)."""
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} not found")
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: not a TOML text file (it is not UTF-8 text); pass a training config "
                              "such as recipes/mir1k/conf.toml") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        k, v = item.split("=", 1)
        _set_dotted(raw, k.strip(), _parse_value(v.strip()))
    return config_from_dict(raw)


def config_from_dict(raw: dict) -> TrainConfig:
    raw = copy.deepcopy(raw)
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown config keys {sorted(unknown)}; known: {sorted(known)}")
    phases = raw.pop("phases", None)
    cfg = TrainConfig(**raw)
    if phases is not None:
        if not isinstance(phases, list) or not all(isinstance(ph, dict) for ph in phases):
            raise ConfigError(f"phases must be a list of tables ([[phases]] in the file, or phases=[{{lr=1e-3}}]), "
                              f"got {phases!r}")
        pk = {f.name for f in fields(PhaseConfig)}
        out = []
        for i, ph in enumerate(phases):
            bad = set(ph) - pk
            if bad:
                raise ConfigError(f"phases[{i}]: unknown keys {sorted(bad)}; known: {sorted(pk)}")
            out.append(PhaseConfig(**ph))
        cfg.phases = out
    cfg.phases = [p if isinstance(p, PhaseConfig) else PhaseConfig(**p) for p in cfg.phases]
    validate_config(cfg)
    return cfg


_TYPES = {"int": int, "float": (int, float), "str": str, "dict": dict, "list": list, "bool": bool,
          "tuple[float, float]": (list, tuple)}
# (low, high, low excluded) per numeric setting; every other setting is checked for its type only
_RANGES = {"seed": (0, 2**32 - 1, False), "grad_clip": (0, None, False), "silence_db": (0, 200, True),
           "mask_weight": (0, None, False), "sa_power": (0, 4, False), "checkpoint_every": (1, None, False), "voice_rule_batches": (1, 10_000, False),
           "threads": (0, 1024, False), "chunk_frames": (2, 100_000, False), "batch_size": (1, 4096, False),
           "steps_per_epoch": (1, None, False), "max_epochs": (1, None, False), "lr": (0, 10, True),
           "patience": (1, None, False), "max_minutes": (0, None, False), "formant_ratio": (1, 4, False)}
OPTIMIZERS = ("rmsprop", "adam", "sgd")
DATASETS = ("mir1k", "musdb", "musdb-wav", "dsd100")


def _check_fields(obj, prefix: str) -> None:
    """Each dataclass field of ``obj`` has its declared type (and range, where :data:`_RANGES` has one)."""
    for f in fields(obj):
        v, name = getattr(obj, f.name), f"{prefix}{f.name}"
        want = _TYPES.get(str(f.type))
        if want is None:
            continue
        if isinstance(v, bool) and want is not bool or not isinstance(v, want):
            kind = {"int": "an integer", "float": "a number", "str": "a string", "dict": "a table",
                    "list": "a list", "bool": "true or false"}.get(str(f.type), "a [low, high] pair")
            raise ConfigError(f"{name} must be {kind}, got {v!r}")
        if str(f.type) == "tuple[float, float]":
            if len(v) != 2 or not all(isinstance(e, (int, float)) and not isinstance(e, bool) and math.isfinite(e)
                                      for e in v) or v[0] > v[1]:
                raise ConfigError(f"{name} must be [low, high] with low <= high, got {v!r}")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            lo, hi, lo_open = _RANGES.get(f.name, (None, None, False))
            if f.name.endswith("_prob"):
                lo, hi = 0, 1
            check_number(v, name, lo=lo, hi=hi, lo_open=lo_open, error=ConfigError)


def validate_config(cfg: TrainConfig) -> None:
    """Types and ranges of every setting, names of every choice, and the model's arguments and size,
    checked before anything is built, read or written."""
    _check_fields(cfg, "")
    if not cfg.phases:
        raise ConfigError("phases: the config needs at least one [[phases]] table")
    for i, pc in enumerate(cfg.phases):
        _check_fields(pc, f"phases.{i}.")
    for name, value, allowed in (("arch", cfg.arch, sorted(ARCHITECTURES)), ("optimizer", cfg.optimizer.lower(), OPTIMIZERS),
                                 ("dataset", cfg.dataset, DATASETS), ("mask_target", cfg.mask_target, MASK_TARGETS),
                                 ("precision", cfg.precision, PRECISIONS)):
        if value not in allowed:
            raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
    try:
        fcfg = FeatureConfig.from_dict(cfg.features)
        cls, kwargs = model_args(cfg.arch, cfg.model)
        check_model_args(cls, fcfg.n_mels, kwargs)
    except VocalsepError as exc:
        raise ConfigError(str(exc).replace("model argument ", "model.")) from None
    known = {f.name for f in fields(RemixConfig)}
    for prefix, table in [("remix", cfg.remix)] + [(f"phases.{i}.remix", pc.remix) for i, pc in enumerate(cfg.phases)]:
        bad = set(table) - known
        if bad:
            raise ConfigError(f"{prefix}: unknown keys {sorted(bad)}; known: {sorted(known)}")
    for i in range(len(cfg.phases)):
        prefix = f"phases.{i}.remix." if cfg.phases[i].remix else "remix."
        try:
            remix = cfg.remix_for(i + 1)
        except TypeError as exc:
            raise ConfigError(f"{prefix[:-1]}: {exc}") from None
        _check_fields(remix, prefix)
