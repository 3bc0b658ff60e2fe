"""What to train: the models of a profile's sweep.

A sweep is one base Config (a profile, with the command line's flags and YAML values on top: wae_lib.commands.train)
replaced per model: training set, content size and seed (:func:`sweep_configs`); every run folder is named by
:func:`wae_lib.config.run_name`.
"""

from __future__ import annotations

from ..config import SWEEPS, Config, ConfigError, run_name


def sweep_configs(base: Config, seeds: tuple[int, ...] = ()) -> list[tuple[str, Config]]:
    """(run folder name, config) of every model of ``base.profile``'s sweep (paper: 2 training sets x 5 content
    sizes), each ``base`` with its set, content size and seed replaced. The first seed's folders are named
    ``<set>_c<content>``, the others ``<set>_c<content>_s<seed>``."""
    sweep = SWEEPS.get(base.profile)
    if sweep is None:
        raise ConfigError(f"config field 'profile' = {base.profile!r} has no sweep; expected one of {sorted(SWEEPS)}")
    seeds = tuple(seeds) or (base.seed,)
    return [(run_name(data, cd, None if seed == seeds[0] else seed), base.replace(data=data, content_dim=cd, seed=seed))
            for seed in seeds for data in sweep["data"] for cd in sweep["content_dim"]]
