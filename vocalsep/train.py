"""Training: curriculum phases, on-the-fly remixing, validation, atomic resumable checkpoints.

A run lives in one folder::

    <out>/config.json          the resolved configuration
    <out>/phase<N>/last.pt     full training state (weights, optimiser, random streams), for resuming
    <out>/phase<N>/best.pt     model file of the best validation epoch (what Separator loads)
    <out>/phase<N>/log.jsonl   one line per epoch

Phase N > 1 starts from phase N-1's ``best.pt``. Re-running a phase whose ``last.pt`` exists resumes
it where it stopped and draws the same batches an uninterrupted run would have drawn.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from .checkpoint import ModelBundle, atomic_torch_save, load_model, read_checkpoint, save_model
from .choices import ACCOMPANIMENT, VOCALS
from .config import MASK_TARGETS, ConfigError, TrainConfig
from .data import RemixSampler, fixed_chunks, load_clips, load_pool, load_voices
from .distributed import barrier, from_rank0, gather, init_distributed
from .errors import VocalsepError
from .features import FeatureConfig, loud_bins
from .frontend import FrontEnd
from .losses import objective
from .models import build_model, model_args, narrower_unet

log = logging.getLogger(__name__)


class TrainingError(VocalsepError, RuntimeError):
    """Training cannot go on (a non-finite loss)."""


# What a resumed run must share with the run it continues: the network and what it is trained on.
_RESUME_KEYS = ("arch", "model", "features", "mask_target")


# a last.pt: what it holds, and what its training state holds
_LAST_KEYS = {"model": dict, "optimizer": dict, "samplers": list, "torch_rngs": list, "state": dict}
_STATE_KEYS = {"epoch": int, "step": int, "best": (int, float), "best_epoch": int, "elapsed": (int, float),
               "history": list}


def check_resume_state(ck, path: Path) -> None:
    """A training checkpoint has every entry :meth:`PhaseRun.save_last` writes, of the right kind;
    anything else (a model file, a list, a state missing keys) is named before it is used."""
    what = "delete it to start this phase afresh, or train into a new -o folder"
    if isinstance(ck, dict) and "state_dict" in ck and "arch" in ck:
        raise ConfigError(f"{path}: a model file, not a training checkpoint; {what} "
                          "(to start from a model file, set init_from)")
    if not isinstance(ck, dict):
        raise ConfigError(f"{path}: not a training checkpoint (it holds a {type(ck).__name__}); {what}")
    for table, keys in (("checkpoint", _LAST_KEYS), ("state", _STATE_KEYS)):
        d = ck if table == "checkpoint" else ck["state"]
        missing = sorted(k for k in keys if k not in d)
        wrong = sorted(k for k in keys if k in d and (isinstance(d[k], bool) or not isinstance(d[k], keys[k])))
        if missing or wrong:
            detail = f"missing {', '.join(missing)}" if missing else f"{', '.join(wrong)} of the wrong kind"
            raise ConfigError(f"{path}: not a complete training checkpoint ({table}: {detail}); {what}")
    if not ck["samplers"] or len(ck["samplers"]) != len(ck["torch_rngs"]):
        raise ConfigError(f"{path}: not a complete training checkpoint (one sampler and generator state per "
                          f"process expected); {what}")


def _check_resume(cfg: TrainConfig, out: Path) -> None:
    """Refuse to continue a run folder whose recorded network differs from ``cfg``'s."""
    old = out / "config.json"
    if not old.is_file():
        return
    try:
        recorded = json.loads(old.read_text())
    except (ValueError, OSError) as exc:
        raise ConfigError(f"{old}: unreadable ({exc}); use a new -o folder or repair it") from None
    if not isinstance(recorded, dict):
        raise ConfigError(f"{old}: not a run's configuration (a JSON {type(recorded).__name__}, not an object); "
                          "use a new -o folder or remove the file")
    new = cfg.to_dict()
    diff = [k for k in _RESUME_KEYS if k in recorded and recorded[k] != new[k]]
    if diff:
        raise ConfigError(f"{out} holds a run with a different {', '.join(diff)} "
                          f"({', '.join(f'{k}={recorded[k]!r}' for k in diff)}); resume it with its own config, "
                          "or train into a new -o folder")


class FeatureExtractor:
    """Waveform batches -> (log-mel, ideal binary labels, bin weights, mask target), on the model's device.

    The mask target is the voice's ideal binary mask (``mask_target="ibm"``), its ideal ratio mask
    on the mel bands, ``|V| / (|V| + |A|)`` (``"irm"``), or the signal approximation (``"sa"``): the
    masked mixture ``m X`` against the voice ``V``, whose squared error ``X^2 (m - V / X)^2`` is a
    ratio target ``min(V / X, 1)`` with each bin weighted by ``X ** sa_power`` (2: the error energy
    of the reconstruction, what SDR counts), the weights of each example scaled to mean 1 over its
    loud bins so that a quiet mixture counts as much as a loud one.
    """

    def __init__(self, fcfg: FeatureConfig, silence_db: float, device: str | torch.device = "cpu",
                 mask_target: str = "ibm", sa_power: float = 2.0):
        if mask_target not in MASK_TARGETS:
            raise ConfigError(f"unknown mask_target {mask_target!r}; choose one of {', '.join(MASK_TARGETS)}")
        self.cfg, self.silence_db, self.device = fcfg, silence_db, torch.device(device)
        self.mask_target, self.sa_power = mask_target, sa_power
        self.front = FrontEnd(fcfg)  # the numpy front end separation uses, so the two cannot drift apart

    def __call__(self, voice, acc):
        v, a = _as_numpy(voice), _as_numpy(acc)
        _, mel = self.front.analyse(np.concatenate([v, a, v + a]))
        mel = mel.reshape(3, len(v), *mel.shape[1:])
        labels = mel[:2].argmax(0)  # 0 = vocals, 1 = accompaniment (ties: vocals, as torch.argmax)
        weights = loud_bins(mel[2], self.silence_db).astype(np.float32)
        if self.mask_target == "irm":
            target = mel[0] / np.maximum(mel[0] + mel[1], 1e-12)
        elif self.mask_target == "sa":
            target = np.minimum(mel[0] / np.maximum(mel[2], 1e-12), 1.0)
            energy = weights * mel[2] ** self.sa_power
            scale = energy.sum((1, 2), keepdims=True) / np.maximum(weights.sum((1, 2), keepdims=True), 1.0)
            weights = (energy / np.maximum(scale, 1e-30)).astype(np.float32)
        else:
            target = (labels == 0).astype(np.float32)

        def to(x):
            return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

        return to(self.front.log_mel(mel[2])), to(labels.astype(np.int64)), to(weights), to(target)


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, np.float32)


def feature_stats(clips, fx: FeatureExtractor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-band mean and std of the log-mel features of the clips' own mixtures."""
    total, total_sq, n = 0.0, 0.0, 0
    for c in clips:
        v = torch.from_numpy(c.voice)[None]
        a = torch.from_numpy(c.accompaniment)[None]
        feats = fx(v, a)[0][0].double()
        total = total + feats.sum(0)
        total_sq = total_sq + feats.square().sum(0)
        n += feats.shape[0]
    mean = total / n
    std = (total_sq / n - mean.square()).clamp_min(0).sqrt()
    return mean.float(), std.float()


@torch.no_grad()
def estimate_voice_rule(model, sampler: RemixSampler, fx: FeatureExtractor, batches: int, batch_size: int) -> dict:
    """Mean embedding of voice-dominated and of accompaniment-dominated (non-silent) bins."""
    model.eval()
    sums = torch.zeros(2, model.emb_dim, dtype=torch.float64)
    for _ in range(batches):
        v, a = sampler.sample(batch_size)
        feats, labels, weights, _ = fx(torch.from_numpy(v), torch.from_numpy(a))
        emb = model(feats)["embedding"].double()
        for s in range(2):
            w = ((labels == s).double() * weights.double())[..., None]
            sums[s] += (emb * w).sum((0, 1, 2)).cpu()
    centroids = torch.nn.functional.normalize(sums, dim=1)
    return {VOCALS: centroids[0].tolist(), ACCOMPANIMENT: centroids[1].tolist()}


@torch.no_grad()
def recalibrate_batch_norm(model, sampler: RemixSampler, fx: FeatureExtractor, batches: int, batch_size: int) -> int:
    """Recompute the running statistics of ``model``'s batch-norm layers from ``batches`` training
    batches, as separation will see the network: the batch-norm layers take each batch's statistics
    and keep their plain mean over the batches (momentum ``None``), every other layer is in eval mode
    (dropout off, so the layers after a dropout see their inputs at inference scale). For weights
    averaged over checkpoints, whose averaged statistics belong to none of them (SWA's ``update_bn``).
    Only torch's batch-norm layers are recomputed (the U-Net's); returns how many, 0 if it has none."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not layers:
        return 0
    model.eval()
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        for _ in range(batches):
            v, a = sampler.sample(batch_size)
            model(fx(torch.from_numpy(v), torch.from_numpy(a))[0])
    finally:
        for m, momentum in zip(layers, momenta, strict=True):
            m.momentum = momentum
        model.eval()
    return len(layers)


def training_sampler(cfg: TrainConfig, phase: int, seed: int, fcfg: FeatureConfig | None = None,
                     clips=None) -> RemixSampler:
    """The remix sampler of ``cfg``'s phase ``phase`` (its clips unless given, pool and voices loaded)
    under its own ``seed``."""
    fcfg = fcfg or FeatureConfig.from_dict(cfg.features)
    clips = clips if clips is not None else load_clips(cfg.dataset, cfg.data_root, cfg.train_set, fcfg.sample_rate)
    voices = load_voices(cfg.voices, cfg.voices_root, fcfg.sample_rate) if cfg.voices else None
    pool = load_pool(cfg.pool, cfg.pool_root, fcfg.sample_rate) if cfg.pool else None
    return RemixSampler(clips, fcfg.samples_for_frames(cfg.phases[phase - 1].chunk_frames), cfg.remix_for(phase),
                        seed=seed, pool=pool, sample_rate=fcfg.sample_rate, voices=voices)


@torch.no_grad()
def validate(model, chunks, fx: FeatureExtractor, batch_size: int, mask_weight: float = 1.0) -> float:
    model.eval()
    v_all, a_all = chunks
    total, n = 0.0, 0
    for s in range(0, len(v_all), batch_size):
        v = torch.from_numpy(v_all[s:s + batch_size])
        a = torch.from_numpy(a_all[s:s + batch_size])
        feats, labels, weights, target = fx(v, a)
        loss = objective(model(feats), labels, 2, weights, mask_weight, target)
        total += float(loss) * len(v)
        n += len(v)
    return total / max(n, 1)


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    name = name.lower()
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    raise ConfigError(f"unknown optimizer {name!r}; choose rmsprop, adam or sgd")


def train_phase(cfg: TrainConfig, phase: int, out_dir: str | Path, on_epoch_end=None) -> Path:
    """Run (or resume) curriculum phase ``phase`` (1-based); returns the phase's best model file.

    Runs unchanged under ``torchrun --nproc_per_node N``: every rank draws its own batches, gradients
    are averaged by DistributedDataParallel, batch-norm statistics are taken over all ranks, and only
    rank 0 writes files. ``on_epoch_end(model, state)``, if given, is called on every rank.
    """
    return PhaseRun(cfg, phase, out_dir).run(on_epoch_end)


class PhaseRun:
    """One curriculum phase: its data, network, optimiser and progress, and the steps that run it.

    ``state`` (epoch, step, best validation loss and epoch, elapsed seconds, history, why it stopped)
    is saved with the weights, the optimiser and every rank's random streams in ``phaseN/last.pt``
    every ``checkpoint_every`` steps and after every epoch, so a killed run resumes where it was and
    draws the batches it would have drawn.
    """

    def __init__(self, cfg: TrainConfig, phase: int, out_dir: str | Path):
        self.rank, self.world = init_distributed()
        if not 1 <= phase <= len(cfg.phases):
            raise ConfigError(f"phase {phase} not in the config (it has {len(cfg.phases)})")
        self.cfg, self.phase, self.pc = cfg, phase, cfg.phases[phase - 1]
        self.out = Path(out_dir)
        self.pdir = self.out / f"phase{phase}"
        self.last, self.best_path = self.pdir / "last.pt", self.pdir / "best.pt"
        _check_resume(cfg, self.out)  # nothing in the run folder changes before the resume is known to be valid
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self._load_data()
        torch.manual_seed(cfg.seed * 1000 + phase)  # the same initial weights on every rank
        self.model = build_model(cfg.arch, self.fcfg.n_mels, **cfg.model)
        self.earlier = self._initial_weights()  # training summaries of the phases this one continues
        self.model.to(self.device)
        self.net = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(self.model, device_ids=[self.device.index]
                                               if self.device.type == "cuda" else None)
        self.opt = make_optimizer(cfg.optimizer, self.model.parameters(), self.pc.lr)
        torch.manual_seed(cfg.seed * 1000 + phase + 7919 * self.rank)  # dropout differs per rank
        self.state = {"epoch": 0, "step": 0, "best": math.inf, "best_epoch": 0, "elapsed": 0.0, "history": [],
                      "earlier": self.earlier}
        if self.last.is_file():
            self._resume()
            # the runs an init_from phase continues are known only when it starts: kept in the state
            self.earlier = self.state.setdefault("earlier", self.earlier)

    # ---- set-up -----------------------------------------------------------------------------
    def _load_data(self) -> None:
        cfg = self.cfg
        self.fcfg = fcfg = FeatureConfig.from_dict(cfg.features)
        self.device = _device(cfg.device)
        self.fx = FeatureExtractor(fcfg, cfg.silence_db, self.device, cfg.mask_target, cfg.sa_power)
        self.train_clips = load_clips(cfg.dataset, cfg.data_root, cfg.train_set, fcfg.sample_rate)
        self.valid_clips = load_clips(cfg.dataset, cfg.data_root, cfg.valid_set, fcfg.sample_rate) if cfg.valid_set else []
        self.length = fcfg.samples_for_frames(self.pc.chunk_frames)
        self.sampler = training_sampler(cfg, self.phase, cfg.seed * 1000 + self.phase + 7919 * self.rank, fcfg,
                                        self.train_clips)
        self.voices = self.sampler.voices  # for the voice-rule sampler of finalise
        self.valid_chunks = fixed_chunks(self.valid_clips or self.train_clips[:8], self.length)

    def _initial_weights(self) -> list[dict]:
        """Phase 1: ``init_from``'s weights or fresh ones with the data's feature statistics; later
        phases: the previous phase's best. Returns the summaries of the phases this one continues."""
        if self.phase == 1:
            if self.cfg.init_from and not self.last.is_file():
                return init_from_file(self.model, self.cfg.init_from, self.fcfg,
                                      lambda: feature_stats(self.train_clips, self.fx))
            if not self.last.is_file():  # a resumed run gets its statistics back with the weights
                self.model.set_feature_stats(*feature_stats(self.train_clips, self.fx))
            return []
        prev = self.out / f"phase{self.phase - 1}" / "best.pt"
        if not prev.is_file():
            raise ConfigError(f"phase {self.phase} starts from {prev}, which does not exist; "
                              f"run phase {self.phase - 1} first")
        prev_bundle = load_model(prev)
        self.model.load_state_dict(prev_bundle.model.state_dict(), strict=True)
        return prev_bundle.training.get("curriculum", []) + [
            {k: v for k, v in prev_bundle.training.items() if k != "curriculum"}]

    def _resume(self) -> None:
        ck = read_checkpoint(self.last)
        check_resume_state(ck, self.last)
        if len(ck["samplers"]) != self.world:
            raise ConfigError(f"{self.last} was written by {len(ck['samplers'])} processes; resume it with as many")
        try:
            self.model.load_state_dict(ck["model"], strict=True)
            self.opt.load_state_dict(ck["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ConfigError(f"{self.last} does not fit this config's network ({str(exc).splitlines()[0][:120]}); "
                              f"resume with the config it was started with, or use a new -o folder") from None
        self.sampler.set_state(ck["samplers"][self.rank])
        torch.set_rng_state(ck["torch_rngs"][self.rank])
        self.state = ck["state"]
        log.info("phase %d: resumed at epoch %d step %d", self.phase, self.state["epoch"], self.state["step"])
        why = self.state.get("stopped")
        if why and self._limit_raised(why):  # a phase stopped by its budget goes on once the budget grows
            log.info("phase %d: it stopped on its %s, which this config raises; training goes on", self.phase, why)
            self.state["stopped"] = None

    def _limit_raised(self, why: str) -> bool:
        """Whether the limit that stopped this phase (``why``) no longer holds under this config."""
        pc, state = self.pc, self.state
        if why == "time budget":
            return not pc.max_minutes or state["elapsed"] < pc.max_minutes * 60
        if why == "patience":
            return state["epoch"] - state["best_epoch"] < pc.patience
        return False

    # ---- files ------------------------------------------------------------------------------
    def save_last(self) -> None:
        samplers, rngs = gather(self.sampler.state(), self.world), gather(torch.get_rng_state(), self.world)
        if self.rank == 0:
            atomic_torch_save({"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                               "samplers": samplers, "torch_rngs": rngs, "state": self.state}, self.last)

    def bundle(self, net, voice_rule=None) -> ModelBundle:
        cfg, state = self.cfg, self.state
        summary = {"phase": self.phase, "chunk_frames": self.pc.chunk_frames, "best_epoch": state["best_epoch"],
                   "valid_loss": state["best"], "steps": state["step"], "minutes": round(state["elapsed"] / 60, 1),
                   "train_clips": len(self.train_clips), "valid_clips": len(self.valid_clips), "seed": cfg.seed,
                   "silence_db": cfg.silence_db, "mask_target": cfg.mask_target,
                   **({"sa_power": cfg.sa_power} if cfg.mask_target == "sa" else {}),
                   "data": f"{cfg.dataset} {cfg.train_set}".strip(), "curriculum": self.earlier,
                   "total_minutes": round((state["elapsed"] + sum(e.get("minutes", 0) * 60 for e in self.earlier)) / 60, 1)}
        return ModelBundle(model=net, features=self.fcfg, arch=cfg.arch, model_kwargs=_model_kwargs(cfg),
                           voice_rule=voice_rule, training=summary, separation={"silence_db": cfg.silence_db})

    # ---- running ----------------------------------------------------------------------------
    def run(self, on_epoch_end=None) -> Path:
        self.pdir.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            (self.out / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2) + "\n")
        t_start = time.time() - self.state["elapsed"]
        while self.state["epoch"] < self.pc.max_epochs and not self.state.get("stopped"):
            train_loss = self.train_epoch(t_start)
            self.end_epoch(train_loss)
            if on_epoch_end is not None:
                on_epoch_end(self.model, self.state)
            self.save_last()
        self.finalise()
        log.info("phase %d done: best epoch %d, valid loss %.4f -> %s", self.phase, self.state["best_epoch"],
                 self.state["best"], self.best_path)
        return self.best_path

    def train_epoch(self, t_start: float) -> float:
        """The steps up to the end of the current epoch; returns their mean training loss."""
        cfg, pc, state = self.cfg, self.pc, self.state
        self.model.train()
        state["finalised"] = False
        # the epoch's loss so far (kept in the state: an epoch resumed mid-way reports all its steps)
        epoch_loss, n_steps = state.get("epoch_loss", 0.0), state.get("epoch_steps", 0)
        while state["step"] < (state["epoch"] + 1) * pc.steps_per_epoch:
            v, a = self.sampler.sample(pc.batch_size)
            feats, labels, weights, target = self.fx(torch.from_numpy(v), torch.from_numpy(a))
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                out = self.net(feats)
            loss = objective({k: o.float() for k, o in out.items()}, labels, 2, weights, cfg.mask_weight, target)
            if not torch.isfinite(loss):
                raise TrainingError(f"phase {self.phase}: the training loss is {loss.item()} at step {state['step'] + 1}; "
                                    "lower the learning rate (phases.N.lr) or check the data; the last good "
                                    f"checkpoint is kept in {self.pdir}")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.opt.step()
            epoch_loss += loss.item()
            n_steps += 1
            state["epoch_loss"], state["epoch_steps"] = epoch_loss, n_steps
            state["step"] += 1
            state["elapsed"] = time.time() - t_start
            if state["step"] % cfg.checkpoint_every == 0:
                self.save_last()
        state["epoch"] += 1
        state["epoch_loss"], state["epoch_steps"] = 0.0, 0
        return epoch_loss / n_steps if n_steps else math.nan

    def end_epoch(self, train_loss: float) -> None:
        """Validate, keep the best weights, log the epoch and decide whether the phase stops."""
        pc, state, phase = self.pc, self.state, self.phase
        vloss = validate(self.model, self.valid_chunks, self.fx, pc.batch_size, self.cfg.mask_weight)
        if not math.isfinite(vloss):
            raise TrainingError(f"phase {phase}: the validation loss is {vloss} after epoch {state['epoch']}; "
                                "lower the learning rate (phases.N.lr) or check the validation data")
        improved = vloss < state["best"]
        if improved:
            state["best"], state["best_epoch"] = vloss, state["epoch"]
            if self.rank == 0:
                save_model(self.best_path, self.bundle(self.model))
        if pc.keep_epochs and self.rank == 0:
            save_model(self.pdir / "epochs" / f"epoch{state['epoch']:03d}.pt", self.bundle(self.model))
        record = {"epoch": state["epoch"], "step": state["step"],
                  "train_loss": train_loss if math.isfinite(train_loss) else None,  # nan: no step seen
                  "valid_loss": vloss, "best": improved, "minutes": round(state["elapsed"] / 60, 2)}
        state["history"].append(record)
        if self.rank == 0:
            with open(self.pdir / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        log.info("phase %d epoch %d: train %.4f valid %.4f%s (%.1f min)", phase, state["epoch"],
                 train_loss, vloss, " *" if improved else "", record["minutes"])
        if state["epoch"] - state["best_epoch"] >= pc.patience:
            log.info("phase %d: no improvement for %d epochs, stopping", phase, pc.patience)
            state["stopped"] = "patience"
        if pc.max_minutes and state["elapsed"] >= pc.max_minutes * 60:
            log.info("phase %d: time budget of %.0f min used, stopping", phase, pc.max_minutes)
            state["stopped"] = "time budget"
        state["stopped"] = from_rank0(state.get("stopped"), self.world)  # clocks differ; rank 0 decides

    def finalise(self) -> None:
        """The best weights get their voice-cluster rule, measured on training mixtures (once)."""
        barrier(self.world)
        if not self.state.get("finalised") and self.rank == 0:
            with torch.random.fork_rng(devices=[]):  # building the model draws: a phase that goes on later
                best = load_model(self.best_path).model.to(self.device)  # draws what it would have drawn
            rule_sampler = RemixSampler(self.train_clips, self.length, self.cfg.remix_for(self.phase),
                                        seed=self.cfg.seed + 77, sample_rate=self.fcfg.sample_rate,
                                        voices=self.voices)
            rule = (estimate_voice_rule(best, rule_sampler, self.fx, self.cfg.voice_rule_batches, self.pc.batch_size)
                    if "embedding" in best.heads else None)  # mask-regression models need no rule
            save_model(self.best_path, self.bundle(best, rule))
        if not self.state.get("finalised"):
            self.state["finalised"] = True
            self.save_last()
        barrier(self.world)


def init_from_file(model: torch.nn.Module, path: str | Path, features: FeatureConfig | None = None,
                   stats=None) -> list[dict]:
    """Copy a model file's weights into ``model`` (the same network, possibly with extra heads, which
    keep their fresh initialisation); returns the file's training history, to continue it.

    ``features`` is this run's analysis. Where it differs from the file's (a longer STFT window, say)
    with as many mel bands, the weights still fit: they are copied and the per-band input statistics
    replaced by ``stats()`` (mean, std) of the new features; the history records the file's analysis.
    """
    src = load_model(path)
    changed = features is not None and features != src.features
    if changed and features.n_mels != src.features.n_mels:
        raise ConfigError(f"init_from={path}: it was trained on {src.features.n_mels} mel bands and this config "
                          f"has {features.n_mels}; start from a model with as many bands")
    widened = narrower_unet(src.model, model)
    if widened:  # a wider U-Net starts computing exactly what the file's does
        model.load_narrower(src.model.state_dict(), widened)
        missing, unexpected = [], []
        log.info("init_from %s: its %d-channel U-Net widened to %d channels", path, widened, model.channels)
    else:
        try:
            missing, unexpected = model.load_state_dict(src.model.state_dict(), strict=False)
        except RuntimeError as exc:  # same names, other sizes
            raise ConfigError(f"init_from={path}: its network does not match this config's: "
                              f"{str(exc).splitlines()[-1].strip()[:160]}") from None
    # heads the file lacks, and a U-Net's bottleneck blocks beyond the file's (identity at the start)
    fresh = [k for k in missing if k.split(".")[0] not in ("mask", "embed", "bottleneck")]
    if unexpected or fresh or len(missing) == len(model.state_dict()):
        raise ConfigError(f"init_from={path}: its network does not match this config's "
                          f"(unexpected {sorted(unexpected)[:3]}, missing {sorted(fresh)[:3]})")
    entry = {**{k: v for k, v in src.training.items() if k != "curriculum"}, "init_from": str(path)}
    if widened:
        entry["widened_from_channels"] = widened
    if changed:
        if stats is None:
            raise ConfigError(f"init_from={path}: its features differ from this config's and no statistics "
                              "of the new features were given")
        model.set_feature_stats(*stats())
        entry["init_features"] = src.features.to_dict()
        log.info("init_from %s: analysis changed (%s), input statistics recomputed", path,
                 ", ".join(f"{k} {v} -> {getattr(features, k)}" for k, v in src.features.to_dict().items()
                           if getattr(features, k) != v))
    return src.training.get("curriculum", []) + [entry]


def _device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available; use device = \"cpu\"")
    return dev


def _model_kwargs(cfg: TrainConfig) -> dict:
    return model_args(cfg.arch, cfg.model)[1]
