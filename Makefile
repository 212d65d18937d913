# vocalsep developer commands. PYTHON is the interpreter to install into (the current one by default).
PYTHON ?= python3
PIP = $(PYTHON) -m pip
TORCH = torch==2.13.0
FILE ?=
OUT ?= separated

.PHONY: torch install install-train install-test install-eval ffmpeg test demo

# torch first, pinned, so that nothing resolves it to a newer release with CUDA wheels.
torch:
	@$(PYTHON) -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null || $(PIP) install -q $(TORCH)

# The separation runtime only (ONNX Runtime, no torch).
install:
	$(PIP) install -q -e .

# Training, export and the torch runtime: torch pinned first, then the train extra.
install-train: torch
	$(PIP) install -q -e ".[train]"

install-test: torch
	$(PIP) install -q -e ".[test]"

install-eval: ffmpeg
	$(PIP) install -q -e ".[eval]"

ffmpeg:
	@command -v ffmpeg >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update -qq && apt-get install -y -qq ffmpeg; \
	  else echo "ffmpeg is needed and not installed: install it first (sudo apt-get install ffmpeg, brew install ffmpeg, or conda install ffmpeg), then rerun make" >&2; exit 1; fi; }

# The test command CI runs.
test: install-test ffmpeg
	$(PYTHON) -m pytest -q

# Separate a real song with the bundled model: FILE=song.wav, or the MUSDB18 preview that stempeg ships.
# Installs only what is missing (with pip's progress on that first install).
demo: ffmpeg
	@$(PYTHON) -c "import vocalsep, museval, stempeg" 2>/dev/null || $(PIP) install -e ".[eval]"
	@f="$(FILE)"; [ -n "$$f" ] || f=$$($(PYTHON) -c "import stempeg; print(stempeg.example_stem_path())"); \
	  $(PYTHON) -m vocalsep.cli split "$$f" -o "$(OUT)" --force && echo "stems written under $(OUT)/"
