"""sambench: the open benchmark and zero-shot evaluation suite for promptable segmentation."""
from sambench.models import list_models, load_model

__version__ = "0.1.0"
__all__ = ["load_model", "list_models", "__version__"]
