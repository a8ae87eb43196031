"""Loading a command's structured (dataclass) config with hydra, failing early and clearly on bad input.

Every command has one dataclass schema registered in hydra's ConfigStore. Overrides come from the
command line in hydra's syntax (`key=value`, `group.key=value`, `list=[a,b]`). An unknown
key or a value of the wrong type fails before anything runs, with the key's full name and the valid
keys or values, closest first; `__post_init__` checks of the dataclasses then run on the result.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from hydra import compose, initialize
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from polyact.errors import ConfigError, closest_first

T = TypeVar("T")


def load_config(schema: type[T], overrides: list[str]) -> T:
    """An instance of `schema` with the command-line overrides applied and validated."""
    name = f"polyact_{schema.__name__}"
    ConfigStore.instance().store(name=name, node=schema)
    try:
        with initialize(version_base=None, config_path=None):
            cfg = compose(config_name=name, overrides=list(overrides))
        return OmegaConf.to_object(cfg)  # type: ignore[return-value]
    except (HydraException, OmegaConfBaseException) as err:
        raise _friendly(err, schema) from None


def to_yaml(cfg: Any) -> str:
    """The config as YAML, as `--help` prints it and as run directories record it."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def _friendly(err: Exception, schema: type) -> ConfigError:
    """Turn hydra/omegaconf's error into one that names the key and lists what is valid."""
    cause = err.__cause__ if isinstance(err, ConfigCompositionException) and err.__cause__ else err
    full_key = getattr(cause, "full_key", None) or ""
    if isinstance(cause, ConfigAttributeError | ConfigKeyError) and full_key:
        parent, _, leaf = full_key.rpartition(".")
        valid = valid_keys(schema, parent)
        return ConfigError(
            f"unknown config key {full_key!r}; valid keys{' under ' + repr(parent) if parent else ''}, "
            f"closest first: {', '.join(closest_first(leaf, valid))}"
        )
    message = str(cause).split("\n")[0]
    if full_key:
        return ConfigError(f"bad value for config key {full_key!r}: {message}")
    keys = ", ".join(valid_keys(schema, ""))
    return ConfigError(f"bad config: {message}; overrides look like key=value, with keys: {keys}")


def valid_keys(schema: type, dotted_parent: str) -> list[str]:
    """Field names of the (nested) dataclass at `dotted_parent` ('' for the top)."""
    node: Any = schema
    for part in filter(None, dotted_parent.split(".")):
        fields = {f.name: f for f in dataclasses.fields(node)}
        if part not in fields:
            return []
        node = typing.get_type_hints(node)[part]  # resolves postponed annotations, without building a default
    return [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []
