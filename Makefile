# vocalsep developer commands. PYTHON is the interpreter to install into (the current one by default).
PYTHON ?= python3
PIP = $(PYTHON) -m pip
TORCH = torch==2.13.0
FILE ?=
OUT ?= separated

.PHONY: torch install install-test install-eval ffmpeg test demo

# torch first, pinned, so that nothing resolves it to a newer release with CUDA wheels.
torch:
	@$(PYTHON) -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null || $(PIP) install -q $(TORCH)

install: torch
	$(PIP) install -q -e .

install-test: torch
	$(PIP) install -q -e ".[test]"

install-eval: torch ffmpeg
	$(PIP) install -q -e ".[eval]"

ffmpeg:
	@command -v ffmpeg >/dev/null || { apt-get update -qq && apt-get install -y -qq ffmpeg; }

# The test command CI runs.
test: install-test ffmpeg
	$(PYTHON) -m pytest -q

# Separate a real song with the bundled model: FILE=song.wav, or the MUSDB18 preview that stempeg ships.
demo: install-eval
	@f="$(FILE)"; [ -n "$$f" ] || f=$$($(PYTHON) -c "import stempeg; print(stempeg.example_stem_path())"); \
	  $(PYTHON) -m vocalsep.cli split "$$f" -o "$(OUT)" --force && echo "stems written under $(OUT)/"
