"""Command line: thin wrappers that parse options, call the library and report errors in one line."""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import click

from . import __version__
from .choices import (CLIP_MODES, CLUSTER_METHODS, DEVICES, HIGH_BANDS, MASK_SOURCES, MASKS, ORACLES, OUTPUT_FORMATS,
                      RECONSTRUCTIONS, RUNTIMES, STEMS)
from .errors import MAX_SOURCES


class _Seconds(click.FloatRange):
    """A finite number of seconds (``nan`` and ``inf`` are refused before anything is loaded)."""

    name = "seconds"

    def convert(self, value, param, ctx):
        import math

        value = super().convert(value, param, ctx)
        if not math.isfinite(value):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return value


def _shown(text) -> str:
    """``text`` with control characters escaped (a file name holding a newline or a terminal escape
    cannot forge or hide lines); other characters, non-ASCII included, are kept."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _one_line(exc: BaseException) -> str:
    return _shown(" ".join(str(exc).split())) or type(exc).__name__


class _SilentDecoders:
    """Under -q: what C libraries print straight to the process's standard error (libsndfile's mpg123
    decoder warns about fuzzy mp3 seeking, for example) goes to /dev/null, while vocalsep's own errors
    and warnings still reach the real standard error."""

    def __enter__(self):
        self.saved = None
        try:
            real = sys.stderr.fileno() == 2
        except (AttributeError, OSError, ValueError):  # a captured stream (tests, IDEs)
            real = False
        try:
            self.saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:
            self.saved = None
            return self
        if real:
            self.old_stderr = sys.stderr
            sys.stderr = os.fdopen(os.dup(self.saved), "w", buffering=1, errors="backslashreplace")
            self.handlers = [h for h in logging.getLogger().handlers
                             if isinstance(h, logging.StreamHandler) and h.stream is self.old_stderr]
            for h in self.handlers:  # vocalsep's warnings keep reaching the real standard error
                h.setStream(sys.stderr)
        return self

    def __exit__(self, *exc):
        if self.saved is None:
            return
        if getattr(self, "old_stderr", None) is not None:
            for h in self.handlers:
                h.setStream(self.old_stderr)
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = self.old_stderr
        os.dup2(self.saved, 2)
        os.close(self.saved)


class _ShownFormatter(logging.Formatter):
    def format(self, record):
        return _shown(super().format(record))


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so temp files are removed on the way out."""


def _on_signal(signum, frame):
    raise _Terminated(signal.Signals(signum).name)


class _OneLineErrors(click.Group):
    """Turn every vocalsep error (and an OS error such as a full disk) into one line and exit code 1;
    SIGTERM and SIGHUP unwind like Ctrl-C so no temp file is left behind."""

    def invoke(self, ctx):
        from .errors import VocalsepError

        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None and threading.current_thread() is threading.main_thread():
                signal.signal(sig, _on_signal)
        try:
            return super().invoke(ctx)
        except VocalsepError as exc:
            click.echo(f"vocalsep: error: {_one_line(exc)}", err=True)
            ctx.exit(1)
        except OSError as exc:
            where = f"{_shown(exc.filename)}: " if exc.filename else ""
            click.echo(f"vocalsep: error: {where}{exc.strerror or _one_line(exc)}", err=True)
            ctx.exit(1)
        except _Terminated as exc:
            click.echo(f"vocalsep: stopped by {exc}", err=True)
            ctx.exit(128 + getattr(signal, str(exc)).value)


def _set_verbosity(verbose: bool = False, quiet: bool = False) -> None:
    quiet_rank = int(os.environ.get("RANK", "0")) > 0  # under torchrun, only rank 0 reports progress
    level = logging.DEBUG if verbose else logging.WARNING if quiet or quiet_rank else logging.INFO
    logging.basicConfig(level=level, force=True)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_ShownFormatter("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"))
    click.get_current_context().meta["vocalsep.quiet"] = quiet and not verbose


def _verbosity(f):
    """-v/--verbose and -q/--quiet, accepted before and after the subcommand."""
    def cb(ctx, param, value):
        if value:
            ctx.meta[f"vocalsep.{param.name}"] = True
            _set_verbosity(ctx.meta.get("vocalsep.verbose", False), ctx.meta.get("vocalsep.quiet", False))
        return value
    f = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=cb, is_eager=True,
                     help="Errors and warnings only.")(f)
    return click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=cb, is_eager=True,
                        help="Log more detail.")(f)


def _quiet() -> bool:
    return bool(click.get_current_context().meta.get("vocalsep.quiet"))


@click.group(cls=_OneLineErrors)
@click.version_option(__version__, prog_name="vocalsep")
@_verbosity
def main() -> None:
    """Separate singing voice from music with deep clustering."""
    ctx = click.get_current_context()
    _set_verbosity(ctx.meta.get("vocalsep.verbose", False), ctx.meta.get("vocalsep.quiet", False))


@main.command()
@_verbosity
@click.option("-c", "--config", "config", type=click.Path(dir_okay=False), help="TOML training config.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Experiment folder.")
@click.option("--phase", type=int, multiple=True, help="Curriculum phase(s) to run (default: all, in order).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value, e.g. phases.0.lr=5e-4.")
def train(config, out_dir, phase, overrides):
    """Train a model from a config; resumes a phase that was interrupted."""
    from .errors import require

    require("torch", "vocalsep train", "train")
    from .config import load_config
    from .train import train_phase

    cfg = load_config(config, overrides)
    for p in phase or range(1, len(cfg.phases) + 1):
        best = train_phase(cfg, p, out_dir)
        if int(os.environ.get("RANK", "0")) == 0:
            click.echo(f"phase {p}: best model {best}")


def _separator(progress=None, *, model=None, runtime="auto", **options):
    from .separator import Separator

    # a bundled name (checksum verified) or a model file path
    return Separator.from_pretrained(model, runtime, progress=progress, **options)


def _model_choice(f):
    """--model, --runtime and --device, the options people use first."""
    f = click.option("--device", default="cpu", type=click.Choice(DEVICES), show_default=True,
                     help="Where the network runs (cuda: torch runtime).")(f)
    f = click.option("--runtime", default="auto", type=click.Choice(RUNTIMES), show_default=True,
                     help="What runs the network: onnx (ONNX Runtime, the default install) or torch; auto: ONNX "
                          "Runtime when installed and on the CPU, else torch. Both give the same stems.")(f)
    return click.option("--model", "model", default=None, metavar="NAME|PATH",
                        help="Bundled model name or model file (default: the bundled default; see `vocalsep models`).")(f)


def _model_options(f):
    """The research options: how the model's output becomes masks (one Separator argument each)."""
    f = click.option("--reconstruct", default="full", type=click.Choice(RECONSTRUCTIONS), show_default=True,
                     help="full: mask the input's own STFT (full band, stereo, vocals + accompaniment = input); "
                          "mel: the MIREX 2016 inverse-mel path.")(f)
    f = click.option("--cluster", default="kmeans", show_default=True,
                     type=click.Choice(CLUSTER_METHODS),
                     help="kmeans: k-means++ per chunk, voice chosen by the model's rule (kmeans-sklearn: the same "
                          "with scikit-learn); meanshift: clusters found by mean shift; prototype: nearest stored "
                          "centroid.")(f)
    f = click.option("--mask-from", "mask_from", default="auto", show_default=True,
                     type=click.Choice(MASK_SOURCES),
                     help="Voice mask from clustering the embeddings or from the model's mask head "
                          "(auto: the head when the model has one).")(f)
    f = click.option("--mask", default="auto", show_default=True, type=click.Choice(MASKS),
                     help="Binary masks (the paper's) or soft ones (head output, or soft k-means memberships); "
                          "auto: soft from a mask head, binary from clusters.")(f)
    f = click.option("--postfilter/--no-postfilter", default=None,
                     help="Refine the voice mask Wiener-style (powers of both estimates, smoothed in time); "
                          "default: as the model file says (on unless it says off), for --reconstruct full "
                          "with two stems only.")(f)
    f = click.option("--high-band", "high_band", default="octave", show_default=True, type=click.Choice(HIGH_BANDS),
                     help="Mask above the model's 8 kHz band (--reconstruct full): octave: the mean of its 4-8 kHz "
                          "bands, so sibilants and breaths stay with the voice; top: its top band alone.")(f)
    f = click.option("--softness", default=10.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
                     help="Soft-mask sharpness beta: memberships softmax(beta * v.c) over the centroids (with --mask soft).")(f)
    f = click.option("--shifts", default=1, show_default=True, type=click.IntRange(min=1),
                     help="Average the mask over this many time-shifted runs of the network (mask head only; "
                          "4: about +0.05 dB, four times the network's time).")(f)
    f = click.option("--refine/--no-refine", default=None,
                     help="Sharpen the band mask to the STFT's bins with the model's bin refiner (default: on "
                          "where the model has one; --no-refine applies its band mask alone).")(f)
    return f


def _no_effect(sep, ctx) -> list[str]:
    """Options the user set that change nothing for this model and these settings."""
    given = {n for n in ("cluster", "softness") if ctx.get_parameter_source(n) is not click.core.ParameterSource.DEFAULT}
    if sep.mask_from == "head":
        return [f"--{n} has no effect: the mask comes from the model's mask head (--mask-from clusters uses the "
                "embeddings)" for n in sorted(given)]
    if sep.mask != "soft" and "softness" in given:
        return ["--softness has no effect on binary masks (add --mask soft)"]
    return []


class _Progress:
    """A progress bar naming the file on a terminal; plain lines at 25 % steps otherwise (logs, pipes)."""

    def __init__(self, quiet: bool):
        self.quiet, self.name, self.bar, self.shown = quiet, "", None, -1
        self.tty = sys.stderr.isatty()

    def start(self, name: str) -> None:
        self.name, self.bar, self.shown = _shown(name), None, -1

    def __call__(self, done: int, total: int) -> None:
        if self.quiet or total < 1:
            return
        if self.tty:
            from tqdm import tqdm

            if self.bar is None:
                self.bar = tqdm(total=total, unit="chunk", desc=self.name, leave=False)
            self.bar.update(done - self.bar.n)
            return
        step = 25 * (100 * done // total // 25)
        if step > self.shown:
            self.shown = step
            click.echo(f"{self.name}: {step}%", err=True)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, readable=False, path_type=Path))
@click.option("-o", "--out", "out_dir", default="separated", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder.")
@_model_choice
@click.option("--format", "fmt", default="wav", type=click.Choice(OUTPUT_FORMATS), show_default=True,
              help="Output format (mp3 is encoded by ffmpeg while separating).")
@click.option("--filename", "template", default="{track}/{stem}.{ext}", show_default=True,
              help="Output path under -o; fields {track} {stem} {ext} {model} {input_ext} (e.g. "
                   "'{track}_{input_ext}/{stem}.{ext}' keeps a.wav and a.flac apart).")
@click.option("--stem", "only", type=click.Choice(STEMS), help="Write this stem only.")
@click.option("--int24", "int24", is_flag=True, help="24-bit PCM wav/flac (default: 16-bit; float input gives float).")
@click.option("--float32", "float32", is_flag=True, help="32-bit float wav (never clips).")
@click.option("--clip-mode", default="rescale", show_default=True, type=click.Choice(CLIP_MODES),
              help="When integer output would clip: scale all stems by one gain (they keep summing to the input) "
                   "or clamp the samples; a warning says when it acts.")
@click.option("--mp3-bitrate", default=320, show_default=True, type=click.IntRange(32, 320), help="mp3 bitrate, kbit/s.")
@click.option("--mp3-quality", default=7, show_default=True, type=click.IntRange(0, 9),
              help="LAME's algorithm quality: 0 best and slowest, 9 fastest (7 encodes about twice as fast as 3).")
@click.option("--start", default=0.0, show_default=True, type=_Seconds(min=0), help="Separate from this time (s).")
@click.option("--duration", default=None, type=_Seconds(min=0, min_open=True),
              help="Separate this many seconds (default: to the end).")
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
@click.option("--report", is_flag=True, help="Also write OUT/report.html: players, spectrograms and the voice mask "
                                             "of every file, and the run's settings (needs matplotlib).")
@click.option("--sources", default=2, show_default=True, type=click.IntRange(min=2, max=MAX_SOURCES),
              help="2: vocals and accompaniment; N > 2: cluster into N sources, written as source1..N "
                   "(most voice-like first).")
@_verbosity
@_model_options
@click.pass_context
def split(ctx, files, out_dir, model, device, fmt, template, only, int24, float32, clip_mode, mp3_bitrate, mp3_quality, start,
          duration, force, report, sources, **options):
    """Separate FILES (or the audio files in a folder) into vocals and accompaniment.

    The model is loaded once for all files. A file that fails is reported in one line and the
    others are still processed; the exit code is 1 if any file failed.
    """
    from .errors import VocalsepError
    from .outputs import AUDIO_SUFFIXES, check_template, expand_inputs, output_paths

    if int24 and float32:
        raise click.UsageError("--int24 and --float32 exclude each other")
    if (int24 or float32) and fmt == "mp3":
        raise click.UsageError("--int24 and --float32 apply to wav and flac, not mp3")
    if float32 and fmt != "wav":
        raise click.UsageError("--float32 applies to --format wav only")
    if only and sources > 2:
        raise click.UsageError("--stem applies to the two-stem output, not --sources N")
    try:
        check_template(template)
    except VocalsepError as exc:
        raise click.BadParameter(str(exc), param_hint="--filename") from None
    suffix = Path(template).suffix.lower().lstrip(".")
    if "{ext}" not in template and suffix != fmt and ctx.get_parameter_source("fmt") == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError(f"--format {fmt} but --filename {template!r} writes .{suffix} files; "
                               "end the template with .{ext}, or drop one of the two")
    subtype = "FLOAT" if float32 else "PCM_24" if int24 else None
    quiet = _quiet()
    progress = _Progress(quiet)
    sep = _separator(progress, model=model, device=device, sources=sources, **options)
    for msg in _no_effect(sep, ctx):
        click.echo(f"vocalsep: warning: {msg}", err=True)
    inputs = expand_inputs(files)
    model_name = model or _default_model_name()
    if not quiet:
        click.echo(f"Separating {len(inputs)} file{'s' if len(inputs) != 1 else ''} with model {model_name} "
                   f"({sep.bundle.arch}, {sep.runtime} runtime) on {device}", err=True)
    if report:
        from .report import _pyplot

        _pyplot()  # fail now, not after the separation
    failures, seen, items = 0, {}, []
    for path in inputs:
        try:
            if path.is_dir():
                raise VocalsepError(f"{path}: a folder without audio files ({' '.join(AUDIO_SUFFIXES)})")
            stems = (only,) if only else sep.stems
            outputs = output_paths(path, out_dir, stems, template=template, ext=fmt, model=model_name)
            clash = [o for o in outputs.values() if o in seen]
            if clash:
                raise VocalsepError(f"{path}: has the same output {clash[0]} as {seen[clash[0]]}; rename one of them "
                                    "or use --filename with {input_ext}")
            seen.update({o: path for o in outputs.values()})
            progress.start(path.name)
            try:
                with _SilentDecoders() if quiet else contextlib.nullcontext():
                    done = sep.separate_file(path, outputs, overwrite=force, subtype=subtype, clip=clip_mode,
                                             bitrate=mp3_bitrate, mp3_quality=mp3_quality, start=start,
                                             duration=duration, root=out_dir)
            finally:
                progress.stop()
            items.append({"src": path, "stems": done, "start": start, "duration": duration})
            if not quiet:
                folders = sorted({str(p.parent) for p in done.values()})
                click.echo(_shown(f"{path} -> {', '.join(f + '/' for f in folders)}"))
        except VocalsepError as exc:  # this file fails, the others are still separated
            failures += 1
            items.append({"src": path, "error": _one_line(exc)})
            click.echo(f"vocalsep: error: {_one_line(exc)}", err=True)
        except OSError as exc:
            failures += 1
            items.append({"src": path, "error": f"{path}: {exc.strerror or _one_line(exc)}"})
            click.echo(f"vocalsep: error: {_shown(path)}: {exc.strerror or _one_line(exc)}", err=True)
    if report:
        from . import __version__
        from .report import split_report

        settings = {"vocalsep": __version__, "model": f"{model_name} ({sep.bundle.arch})", "runtime": sep.runtime,
                    "device": device,
                    "mask from": sep.mask_from, "mask": sep.mask, "post-filter": sep.postfilter,
                    "reconstruct": sep.reconstruct, "high band": sep.high_band, "shifts": sep.shifts, "refine": sep.refine,
                    "sources": sources, "format": fmt, "start": start, "duration": duration or "to the end"}
        page = split_report(out_dir / "report.html", items, settings, overwrite=force)
        click.echo(f"report: {page}", err=quiet)
    if failures:
        click.echo(f"vocalsep: {failures} of {len(inputs)} files failed", err=True)
        sys.exit(1)


def _default_model_name() -> str:
    from .registry import registry

    return registry()["default"]


@main.command()
@_verbosity
@click.option("--mir1k", "mir1k", type=click.Path(file_okay=False), help="MIR-1K root (stereo clips): GNSDR/GSIR/GSAR, BSS Eval v3.")
@click.option("--musdb", "musdb_root", type=click.Path(file_okay=False), help="MUSDB18 root: museval (BSS Eval v4) JSON per track.")
@click.option("--dsd100", "dsd100_root", type=click.Path(file_okay=False),
              help="DSD100 root: BSS Eval v3 on 30 s windows (SiSEC 2016), JSON per track.")
@click.option("--manifest", type=click.Path(dir_okay=False), help="MIR-1K clips to use, relative to the root (default: all).")
@click.option("--subset", default="test", show_default=True, type=click.Choice(["train", "test"]),
              help="MUSDB18 subset; for DSD100 train = Dev, test = Test.")
@click.option("--split", default=None, type=click.Choice(["train", "valid"]), help="MUSDB18 official split of the train subset.")
@click.option("--is-wav", is_flag=True, help="MUSDB18 in its wav layout instead of stem files.")
@click.option("--estimates", "estimates_dir", type=click.Path(file_okay=False),
              help="Score existing estimates instead of separating: DIR/<subset>/<track>/{vocals,accompaniment}.wav "
                   "(MUSDB18, DSD100) or DIR/<clip>/... (MIR-1K: mono, 16 kHz).")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), help="Write estimates and scores here.")
@click.option("--separate-only", is_flag=True, help="Write the estimates, skip scoring.")
@click.option("--report", is_flag=True, help="MUSDB18/DSD100: also write OUT/report.html (box plots, SDR over time).")
@click.option("--compare", "compare_dir", type=click.Path(file_okay=False),
              help="With --report: another evaluation folder (e.g. an --oracle run) drawn beside this one.")
@click.option("--oracle", type=click.Choice(ORACLES),
              help="Score ideal masks instead of the model: on the model's mel features (-mel) or the "
                   "full-band STFT (the ceiling of each representation).")
@_model_choice
@_model_options
def evaluate(mir1k, musdb_root, dsd100_root, manifest, subset, split, is_wav, estimates_dir, out_dir, separate_only, report,
             compare_dir, oracle, **options):
    """Separate and score a dataset: MIR-1K (--mir1k), MUSDB18 (--musdb) or DSD100 (--dsd100)."""
    from .evaluate import evaluate_dsd100, evaluate_mir1k, evaluate_musdb, format_musdb, format_summary

    if sum(map(bool, (mir1k, musdb_root, dsd100_root))) != 1:
        raise click.UsageError("give exactly one of --mir1k, --musdb and --dsd100")
    if oracle and estimates_dir:
        raise click.UsageError("--oracle and --estimates exclude each other")
    sep = None if estimates_dir else _separator(**options)
    if (musdb_root or dsd100_root) and not out_dir:
        raise click.UsageError("--musdb and --dsd100 need -o/--out for the JSON files")
    if report and (mir1k or separate_only):
        raise click.UsageError("--report applies to --musdb and --dsd100 scores")

    def write_report():
        if report:
            from .report import evaluation_report

            page = evaluation_report(Path(out_dir) / "report.html", out_dir, oracle or options.get("model") or "model",
                                     compare_dir, Path(compare_dir).name if compare_dir else "oracle", overwrite=True)
            click.echo(f"report: {page}")

    if dsd100_root:
        result = evaluate_dsd100(sep, dsd100_root, out_dir, "Dev" if subset == "train" else "Test", estimates_dir,
                                 separate_only=separate_only, oracle=oracle)
        if not separate_only:
            click.echo(format_musdb(result["summary"], "BSS Eval v3, 30 s windows, 15 s hop"))
        write_report()
        return
    if musdb_root:
        result = evaluate_musdb(sep, musdb_root, out_dir, subset, split, is_wav, estimates_dir,
                                separate_only=separate_only, oracle=oracle)
        if not separate_only:
            click.echo(format_musdb(result["summary"]))
        write_report()
        return
    result = evaluate_mir1k(sep, mir1k, manifest, out_dir, separate_only, oracle=oracle, estimates_dir=estimates_dir)
    if not separate_only:
        click.echo(format_summary(result["summary"]))


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Submission name, at most 4 letters or digits.")
@click.option("--scores", "scores_dir", required=True, type=click.Path(file_okay=False),
              help="Folder written by `vocalsep evaluate --musdb ... -o FOLDER`.")
@click.option("--musdb", "musdb_root", type=click.Path(file_okay=False), help="MUSDB18 root, to report missing test tracks.")
@click.option("--model", default=None, metavar="NAME|PATH", help="The model that made the estimates (for the description).")
@click.option("--force", is_flag=True, help="Replace an existing submission folder.")
@_verbosity
def submission(out_dir, name, scores_dir, musdb_root, model, force):
    """Write OUT_DIR/NAME/{description.md,test/*.json} for the MUSDB18 leaderboard."""
    from .registry import open_model, resolve_model
    from .submission import expected_tracks, write_submission

    bundle = open_model(model)
    path = resolve_model(model)[0]
    res = write_submission(name, scores_dir, out_dir, bundle.training, f"{bundle.arch}, {path.name}",
                           expected_tracks(musdb_root) if musdb_root else None, force)
    click.echo(f"wrote {res['path']}: {len(res['written'])} tracks")
    if res["missing"]:
        click.echo(f"vocalsep: {len(res['missing'])} test tracks have no scores: " + ", ".join(res["missing"]), err=True)
        sys.exit(1)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (split's layout; a folder tree's subfolders are kept).")
@click.option("--ledger", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The run's record, one JSON line per input (default: OUT/ledger.jsonl); a rerun skips what it "
                   "says is done and retries what failed.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1, max=256),
              help="Worker processes on this machine, each with its model loaded once.")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Run on a Ray cluster instead: its address, 'auto' (a running one, else a local one) or 'local'.")
@click.option("--ray-workers", default=2, show_default=True, type=click.IntRange(min=1), help="Ray actors (loaded models).")
@click.option("--ray-cpus", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="CPUs per Ray worker.")
@click.option("--ray-gpus", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="GPUs per Ray worker (the network runs there; use with --device cuda).")
@_model_choice
@click.option("--format", "fmt", default="wav", type=click.Choice(OUTPUT_FORMATS), show_default=True, help="Output format.")
@click.option("--filename", "template", default="{track}/{stem}.{ext}", show_default=True, help="As for split.")
@click.option("--stem", "only", type=click.Choice(STEMS), help="Write this stem only.")
@click.option("--force", is_flag=True, help="Replace existing outputs (of inputs the ledger does not call done).")
@_verbosity
def batch(inputs, out_dir, ledger, jobs, ray_address, ray_workers, ray_cpus, ray_gpus, model, runtime, device, fmt,
          template, only, force):
    """Separate a catalogue: INPUTS are files, folder trees and list files (.txt, one path per line).

    Every finished input is recorded in the ledger as it finishes; a rerun (after a crash, a kill or
    a failure) skips what is done and retries the rest. One bad file never stops the others; the exit
    code is 1 if any input failed.
    """
    from .batch import Ledger, Settings, catalogue, plan, run_local, run_ray
    from .errors import VocalsepError
    from .outputs import check_template

    try:
        check_template(template)
    except VocalsepError as exc:
        raise click.BadParameter(str(exc), param_hint="--filename") from None
    items = catalogue(inputs, out_dir)
    book = Ledger(ledger or out_dir / "ledger.jsonl")
    settings = Settings(model=model, device=device, runtime=runtime, fmt=fmt, template=template, stems=(only,) if only else None,
                        overwrite=force)
    todo, skipped = plan(items, book, settings)
    quiet = _quiet()
    if not quiet:
        where = f"Ray ({ray_address}, {ray_workers} workers)" if ray_address else f"{jobs} process{'es' if jobs > 1 else ''}"
        click.echo(f"{len(items)} inputs: {skipped} done before, {len(todo)} to separate on {where}", err=True)
    runs = (run_ray(todo, book, settings, ray_address, ray_workers, ray_cpus, ray_gpus) if ray_address
            else run_local(todo, book, settings, jobs))
    failed = done = 0
    t0 = time.time()
    try:
        for rec in runs:
            done += 1
            if rec["error"]:
                failed += 1
                click.echo(f"vocalsep: error: {_shown(rec['error'])}", err=True)
            elif not quiet:
                click.echo(_shown(f"[{done}/{len(todo)}] {rec['path']} ({rec['seconds']:.1f} s)"), err=True)
    finally:
        book.close()
    if not quiet and todo:
        minutes = (time.time() - t0) / 60
        click.echo(f"separated {done - failed} of {len(todo)} inputs in {minutes * 60:.1f} s "
                   f"({(done - failed) / max(minutes, 1e-9):.1f} files/min); {failed} failed", err=True)
    if failed:
        sys.exit(1)


@main.command()
@click.argument("model")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing OUT.")
@_verbosity
def export(model, out, force):
    """Write MODEL's network (a bundled name or a model file) to OUT as ONNX, with its features,
    stems, voice rule and separation defaults in the file's metadata (see docs/usage.md)."""
    from .errors import require

    require("torch", "vocalsep export", "train")
    from .checkpoint import load_model, registry, resolve_model
    from .export import export_onnx, stored_weights

    if out.exists() and not force:
        raise click.UsageError(f"{out} exists; pass --force to replace it")
    path, sha = resolve_model(model)
    bundle = load_model(path, sha256=sha)
    licence = registry()["models"].get(model, {}).get("license", "")
    export_onnx(bundle, out, licence=licence, stored=stored_weights(path))
    click.echo(f"wrote {out}: {bundle.arch}, heads {', '.join(bundle.model.heads)}, {out.stat().st_size / 1e6:.1f} MB")


@main.command()
def models():
    """List the bundled models."""
    from .registry import registry

    reg = registry()
    for name, entry in reg["models"].items():
        mark = "*" if name == reg["default"] else " "
        click.echo(f"{mark} {name:16s} {entry.get('description', '')} [{entry.get('license', 'licence not stated')}]")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
