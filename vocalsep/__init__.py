"""vocalsep: singing-voice separation by deep clustering."""
__version__ = "0.2.0"

__all__ = ["Separator", "__version__"]


def __getattr__(name):
    if name == "Separator":
        from .separator import Separator

        return Separator
    raise AttributeError(f"module 'vocalsep' has no attribute {name!r}")
