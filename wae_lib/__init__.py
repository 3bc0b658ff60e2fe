"""wae-style: Nakada & Asoh (JSAI 2019), style transfer with a Wasserstein autoencoder.

Public API (imported lazily, so the data stage's workers do not pay for torch):
    Config                 one dataclass for model + training (wae_lib.config)
    WAEStyle               the model: encode_content, encode_style, decode, reconstruct, transfer (wae_lib.model.wae)
    VGG16Features          frozen VGG16 with named activations and an offline stand-in (wae_lib.model.vgg)
    load_model(run_dir)    the trained WAEStyle of a run folder, in eval mode (wae_lib.model.run);
                           load_model("pretrained"): the model shipped in the package (wae_lib.model.pretrained)
    set_seed, run_metadata
"""

from importlib import import_module

__version__ = "0.1.0"
_EXPORTS = {"Config": "config", "WAEStyle": "model.wae", "VGG16Features": "model.vgg", "load_model": "model.run",
            "set_seed": "utils", "run_metadata": "utils"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'wae_lib' has no attribute {name!r}")
