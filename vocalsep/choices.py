"""Names declared once for the whole package: the stems, and every choice list that the library
checks and the command line offers. No imports: the CLI reads these without loading torch."""
VOCALS = "vocals"
ACCOMPANIMENT = "accompaniment"
STEMS = (VOCALS, ACCOMPANIMENT)  # the voice, and everything else; model files declare them

RECONSTRUCTIONS = ("full", "mel")
MASKS = ("auto", "binary", "soft")
MASK_SOURCES = ("auto", "clusters", "head")
CLUSTER_METHODS = ("kmeans", "kmeans-sklearn", "prototype", "meanshift")
HIGH_BANDS = ("octave", "top")  # rules for the bins above a model's top band; the first is the default
ORACLES = ("ibm-mel", "irm-mel", "ibm", "irm")
CLIP_MODES = ("rescale", "clamp")
OUTPUT_FORMATS = ("wav", "flac", "mp3")
DEVICES = ("cpu", "cuda")
RUNTIMES = ("auto", "onnx", "torch")  # auto: ONNX Runtime when installed (CPU), else torch
