"""wae-style: Nakada & Asoh (JSAI 2019), style transfer with a Wasserstein autoencoder.

Public API (imported lazily, so the data stage's workers do not pay for torch):
    Config                 one dataclass for model + training (wae_lib.config)
    WAEStyle               the model: encode_content, encode_style, decode, reconstruct, transfer (wae_lib.model.wae)
    VGG16Features          frozen VGG16 with named activations and an offline stand-in (wae_lib.model.vgg)
    load_model(run_dir)    the trained WAEStyle of a run folder, in eval mode (wae_lib.model.run);
                           load_model("pretrained"): the model shipped in the package (wae_lib.model.pretrained)
    set_seed, run_metadata (wae_lib.utils)
The command line: ``python -m wae_lib <command>`` (wae_lib/__main__.py, the one table of the commands).

Layout: one subpackage per layer, in the order of :data:`LAYERS` (the one home of these rules; the README's module
map lists the modules, tests/test_layout.py checks every import):

    foundation   config, params, utils, grids, staleness, command (top-level modules)   importable by every layer
    data         the datasets: layout, decoding, preparation, packed sets, splits, the training loader
    model        the networks, WAEStyle, the losses, checkpoints, the shipped models, a run folder's model
    train        the training loop, train / train_sweep into run folders, the sweep's configs, DDP
    eval         the evaluation images and cache, a sweep's runs, metrics, tables, the scorecard and shipping the
                 model it picks, the claims
    baselines    Reinhard, Gatys, AdaIN and WCT, their decoders' training and the shipped decoders
    report       figures and plots, claims.md and the reports' index, notebook 07's comparison, both trainings,
                 the frontier, notebook 00's explorer, executed notebooks made readable
    commands     one module per ``python -m wae_lib`` command (add_arguments, run; the contract: wae_lib.command)

The repository's own tooling (a lent GPU's session, the notebook runners) is ``devtools/``, outside the package.

Import rules (absolute or relative, at the top of a module or inside a function, TYPE_CHECKING blocks too):
- a module imports the foundation, modules of its own layer and modules of the layers before it in LAYERS, never
  one after it: data < model < train < eval < baselines < report < commands (a function two layers need lives in
  the lower one: the image conversion ``to_uint8_hwc`` in utils, the grids in wae_lib.grids, ``training_cost``
  in model.run);
- the foundation imports only the foundation (staleness: the standard library only, make runs it before the
  virtual environment exists);
- inside the package, a module imports the module that defines a name, not the public API above (``from wae_lib
  import load_model`` is for users, notebooks and tests);
- a subpackage's ``__init__.py`` holds its docstring only, so importing one module never imports its whole layer
  and ``python -m wae_lib --help`` stays free of torch;
- the entry points (this file, ``__main__.py``) name modules of every layer in their tables and import them only
  when a name or command is used; nothing imports them.
"""

from importlib import import_module

__version__ = "0.1.0"
LAYERS = ("data", "model", "train", "eval", "baselines", "report", "commands")  # the subpackages, lowest first
_EXPORTS = {"Config": "config", "WAEStyle": "model.wae", "VGG16Features": "model.vgg", "load_model": "model.run",
            "set_seed": "utils", "run_metadata": "utils"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'wae_lib' has no attribute {name!r}")
