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

import torch

from .checkpoint import ModelBundle, atomic_torch_save, load_model, read_checkpoint, save_model
from .choices import ACCOMPANIMENT, VOCALS
from .config import MASK_TARGETS, ConfigError, TrainConfig
from .data import RemixSampler, fixed_chunks, load_clips, load_pool
from .distributed import barrier, from_rank0, gather, init_distributed
from .errors import VocalsepError
from .features import FeatureConfig, ideal_binary_labels, silence_weights
from .frontend import FrontEnd
from .losses import objective
from .models import build_model, model_args

log = logging.getLogger(__name__)


class TrainingError(VocalsepError, RuntimeError):
    """Training cannot go on (a non-finite loss)."""


# What a resumed run must share with the run it continues: the network and what it is trained on.
_RESUME_KEYS = ("arch", "model", "features", "mask_target")


def _check_resume(cfg: TrainConfig, out: Path) -> None:
    """Refuse to continue a run folder whose recorded network differs from ``cfg``'s."""
    old = out / "config.json"
    if not old.is_file():
        return
    try:
        recorded = json.loads(old.read_text())
    except (ValueError, OSError) as exc:
        raise ConfigError(f"{old}: unreadable ({exc}); use a new -o folder or repair it") from None
    new = cfg.to_dict()
    diff = [k for k in _RESUME_KEYS if k in recorded and recorded[k] != new[k]]
    if diff:
        raise ConfigError(f"{out} holds a run with a different {', '.join(diff)} "
                          f"({', '.join(f'{k}={recorded[k]!r}' for k in diff)}); resume it with its own config, "
                          "or train into a new -o folder")


class FeatureExtractor:
    """Waveform batches -> (log-mel, ideal binary labels, bin weights, mask target), on the model's device.

    The mask target is the voice's ideal binary mask (``mask_target="ibm"``) or its ideal ratio mask
    on the mel bands, ``|V| / (|V| + |A|)`` (``"irm"``).
    """

    def __init__(self, fcfg: FeatureConfig, silence_db: float, device: str | torch.device = "cpu",
                 mask_target: str = "ibm"):
        if mask_target not in MASK_TARGETS:
            raise ConfigError(f"unknown mask_target {mask_target!r}; choose one of {', '.join(MASK_TARGETS)}")
        self.cfg, self.silence_db, self.device = fcfg, silence_db, torch.device(device)
        self.mask_target = mask_target
        self.front = FrontEnd(fcfg, self.device)

    def __call__(self, voice: torch.Tensor, acc: torch.Tensor):
        voice, acc = voice.to(self.device), acc.to(self.device)
        mel = self.front.analyse(torch.cat([voice, acc, voice + acc]))[1].unflatten(0, (3, voice.shape[0]))
        labels = ideal_binary_labels(mel[:2])  # 0 = vocals, 1 = accompaniment
        weights = silence_weights(mel[2], self.silence_db)
        if self.mask_target == "irm":
            target = mel[0] / (mel[0] + mel[1]).clamp_min(1e-12)
        else:
            target = (labels == 0).to(mel.dtype)
        return self.front.log_mel(mel[2]), labels, weights, target


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
    rank, world = init_distributed()
    if not 1 <= phase <= len(cfg.phases):
        raise ConfigError(f"phase {phase} not in the config (it has {len(cfg.phases)})")
    pc = cfg.phases[phase - 1]
    out = Path(out_dir)
    pdir = out / f"phase{phase}"
    _check_resume(cfg, out)  # nothing in the run folder changes before the resume is known to be valid
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    fcfg = FeatureConfig.from_dict(cfg.features)
    device = _device(cfg.device)
    fx = FeatureExtractor(fcfg, cfg.silence_db, device, cfg.mask_target)
    train_clips = load_clips(cfg.dataset, cfg.data_root, cfg.train_set, fcfg.sample_rate)
    valid_clips = load_clips(cfg.dataset, cfg.data_root, cfg.valid_set, fcfg.sample_rate) if cfg.valid_set else []
    length = fcfg.samples_for_frames(pc.chunk_frames)
    pool = load_pool(cfg.pool, cfg.pool_root, fcfg.sample_rate) if cfg.pool else None
    sampler = RemixSampler(train_clips, length, cfg.remix_for(phase), seed=cfg.seed * 1000 + phase + 7919 * rank,
                           pool=pool, sample_rate=fcfg.sample_rate)
    valid_chunks = fixed_chunks(valid_clips or train_clips[:8], length)
    torch.manual_seed(cfg.seed * 1000 + phase)  # the same initial weights on every rank

    model = build_model(cfg.arch, fcfg.n_mels, **cfg.model)
    model_kwargs = _model_kwargs(cfg)
    earlier: list[dict] = []  # training summaries of the phases this one continues
    last = pdir / "last.pt"
    if phase == 1:
        if cfg.init_from and not last.is_file():
            earlier = init_from_file(model, cfg.init_from)
        elif not last.is_file():  # a resumed run gets its statistics back with the weights
            model.set_feature_stats(*feature_stats(train_clips, fx))
    else:
        prev = out / f"phase{phase - 1}" / "best.pt"
        if not prev.is_file():
            raise ConfigError(f"phase {phase} starts from {prev}, which does not exist; run phase {phase - 1} first")
        prev_bundle = load_model(prev)
        model.load_state_dict(prev_bundle.model.state_dict(), strict=True)
        earlier = prev_bundle.training.get("curriculum", []) + [
            {k: v for k, v in prev_bundle.training.items() if k != "curriculum"}]
    model.to(device)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = make_optimizer(cfg.optimizer, model.parameters(), pc.lr)
    torch.manual_seed(cfg.seed * 1000 + phase + 7919 * rank)  # dropout differs per rank

    state = {"epoch": 0, "step": 0, "best": math.inf, "best_epoch": 0, "elapsed": 0.0, "history": []}
    if last.is_file():
        ck = read_checkpoint(last)
        if len(ck["samplers"]) != world:
            raise ConfigError(f"{last} was written by {len(ck['samplers'])} processes; resume it with as many")
        try:
            model.load_state_dict(ck["model"], strict=True)
            opt.load_state_dict(ck["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ConfigError(f"{last} does not fit this config's network ({str(exc).splitlines()[0][:120]}); "
                              f"resume with the config it was started with, or use a new -o folder") from None
        sampler.set_state(ck["samplers"][rank])
        torch.set_rng_state(ck["torch_rngs"][rank])
        state = ck["state"]
        log.info("phase %d: resumed at epoch %d step %d", phase, state["epoch"], state["step"])

    def save_last():
        samplers, rngs = gather(sampler.state(), world), gather(torch.get_rng_state(), world)
        if rank == 0:
            atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                               "samplers": samplers, "torch_rngs": rngs, "state": state}, last)

    def bundle(net, voice_rule=None) -> ModelBundle:
        summary = {"phase": phase, "chunk_frames": pc.chunk_frames, "best_epoch": state["best_epoch"],
                   "valid_loss": state["best"], "steps": state["step"], "minutes": round(state["elapsed"] / 60, 1),
                   "train_clips": len(train_clips), "valid_clips": len(valid_clips), "seed": cfg.seed,
                   "silence_db": cfg.silence_db, "mask_target": cfg.mask_target, "data": f"{cfg.dataset} {cfg.train_set}".strip(), "curriculum": earlier,
                   "total_minutes": round((state["elapsed"] + sum(e.get("minutes", 0) * 60 for e in earlier)) / 60, 1)}
        return ModelBundle(model=net, features=fcfg, arch=cfg.arch, model_kwargs=model_kwargs,
                           voice_rule=voice_rule, training=summary, separation={"silence_db": cfg.silence_db})

    pdir.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    best_path = pdir / "best.pt"
    t_start = time.time() - state["elapsed"]
    while state["epoch"] < pc.max_epochs and not state.get("stopped"):
        model.train()
        state["finalised"] = False
        epoch_loss, n_steps = 0.0, 0
        while state["step"] < (state["epoch"] + 1) * pc.steps_per_epoch:
            v, a = sampler.sample(pc.batch_size)
            feats, labels, weights, target = fx(torch.from_numpy(v), torch.from_numpy(a))
            loss = objective(net(feats), labels, 2, weights, cfg.mask_weight, target)
            if not torch.isfinite(loss):
                raise TrainingError(f"phase {phase}: the training loss is {loss.item()} at step {state['step'] + 1}; "
                                    "lower the learning rate (phases.N.lr) or check the data; the last good "
                                    f"checkpoint is kept in {pdir}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            epoch_loss += loss.item()
            n_steps += 1
            state["step"] += 1
            state["elapsed"] = time.time() - t_start
            if state["step"] % cfg.checkpoint_every == 0:
                save_last()
        state["epoch"] += 1
        vloss = validate(model, valid_chunks, fx, pc.batch_size, cfg.mask_weight)
        if not math.isfinite(vloss):
            raise TrainingError(f"phase {phase}: the validation loss is {vloss} after epoch {state['epoch']}; "
                                "lower the learning rate (phases.N.lr) or check the validation data")
        improved = vloss < state["best"]
        if improved:
            state["best"], state["best_epoch"] = vloss, state["epoch"]
            if rank == 0:
                save_model(best_path, bundle(model))
        record = {"epoch": state["epoch"], "step": state["step"], "train_loss": epoch_loss / max(n_steps, 1),
                  "valid_loss": vloss, "best": improved, "minutes": round(state["elapsed"] / 60, 2)}
        state["history"].append(record)
        if rank == 0:
            with open(pdir / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        log.info("phase %d epoch %d: train %.4f valid %.4f%s (%.1f min)", phase, state["epoch"],
                 record["train_loss"], vloss, " *" if improved else "", record["minutes"])
        if state["epoch"] - state["best_epoch"] >= pc.patience:
            log.info("phase %d: no improvement for %d epochs, stopping", phase, pc.patience)
            state["stopped"] = "patience"
        if pc.max_minutes and state["elapsed"] >= pc.max_minutes * 60:
            log.info("phase %d: time budget of %.0f min used, stopping", phase, pc.max_minutes)
            state["stopped"] = "time budget"
        state["stopped"] = from_rank0(state.get("stopped"), world)  # clocks differ; rank 0 decides
        if on_epoch_end is not None:
            on_epoch_end(model, state)
        save_last()

    # Finalise: the best weights get their voice-cluster rule, measured on training mixtures.
    barrier(world)
    if not state.get("finalised") and rank == 0:
        best = load_model(best_path).model.to(device)
        rule_sampler = RemixSampler(train_clips, length, cfg.remix_for(phase), seed=cfg.seed + 77,
                                    sample_rate=fcfg.sample_rate)
        rule = (estimate_voice_rule(best, rule_sampler, fx, cfg.voice_rule_batches, pc.batch_size)
                if "embedding" in best.heads else None)  # mask-regression models need no rule
        save_model(best_path, bundle(best, rule))
    if not state.get("finalised"):
        state["finalised"] = True
        save_last()
    barrier(world)
    log.info("phase %d done: best epoch %d, valid loss %.4f -> %s", phase, state["best_epoch"], state["best"], best_path)
    return best_path


def init_from_file(model: torch.nn.Module, path: str | Path) -> list[dict]:
    """Copy a model file's weights into ``model`` (the same network, possibly with extra heads, which
    keep their fresh initialisation); returns the file's training history, to continue it."""
    src = load_model(path)
    try:
        missing, unexpected = model.load_state_dict(src.model.state_dict(), strict=False)
    except RuntimeError as exc:  # same names, other sizes
        raise ConfigError(f"init_from={path}: its network does not match this config's: "
                          f"{str(exc).splitlines()[-1].strip()[:160]}") from None
    fresh = [k for k in missing if k.split(".")[0] not in ("mask", "embed")]
    if unexpected or fresh or len(missing) == len(model.state_dict()):
        raise ConfigError(f"init_from={path}: its network does not match this config's "
                          f"(unexpected {sorted(unexpected)[:3]}, missing {sorted(fresh)[:3]})")
    return src.training.get("curriculum", []) + [
        {**{k: v for k, v in src.training.items() if k != "curriculum"}, "init_from": str(path)}]


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
