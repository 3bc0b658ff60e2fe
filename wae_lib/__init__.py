"""wae-style: Nakada & Asoh (JSAI 2019), style transfer with a Wasserstein autoencoder.

Public API:
    Config                 one dataclass for model + training (wae_lib.config)
    WAEStyle               the model: encode_content, encode_style, decode, reconstruct, transfer
    VGG16Features          frozen VGG16 with named activations and an offline stand-in (wae_lib.vgg)
    load_model(run_dir)    the trained WAEStyle of a run folder, in eval mode
    set_seed, run_metadata
"""

from .config import Config
from .models import WAEStyle
from .utils import run_metadata, set_seed
from .vgg import VGG16Features

__all__ = ["Config", "WAEStyle", "VGG16Features", "set_seed", "run_metadata", "load_model"]
__version__ = "0.1.0"


def load_model(run_dir, device="cpu"):
    """The trained WAEStyle of a run folder (written by wae_lib.train), in eval mode."""
    from .train import load_model as _load

    return _load(run_dir, device=device)
