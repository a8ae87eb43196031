"""One directory per policy: `config.json` (the PolicyConfig, vocabulary included), `env_spec.json` (the
environment it acts in: action names, bounds and semantics, control rate, cameras, state and goal names,
as LeRobot's input/output features) and `model.safetensors` (weights, normalisation statistics, fitted
action grids, and the weights of any pretrained backbone).

The directory describes itself: evaluation, the server and the ROS bridge read everything from it, from
any working directory. A directory written before `env_spec.json` existed still loads (its `env_spec`
is None) and `polyact policy set-spec DIR SOURCE` adds the file.

A pretrained backbone also gets a subfolder with its transformers config, preprocessor and tokenizer
files (`vision_backbone/`, `text_encoder/`; a VLM policy `vlm_base/` and with LoRA `vlm_adapter/`, its
base weights referenced by path and content hash: policies/vlm/policy.py), and a sub-goal conditioned
policy its sub-goal predictor, a policy directory of its own (`subgoal_predictor/`), so loading needs
neither its original directory, the training code, nor the network. No pickle anywhere: JSON and safetensors only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_model, save_model

from polyact.atomic import replace_dir_atomic, write_json_atomic
from polyact.contract import EnvSpec
from polyact.errors import ConfigError
from polyact.policies.config import PolicyConfig

CONFIG_FILE = "config.json"
ENV_SPEC_FILE = "env_spec.json"
WEIGHTS_FILE = "model.safetensors"
VISION_DIR = "vision_backbone"
TEXT_DIR = "text_encoder"
SUBGOAL_PREDICTOR_DIR = "subgoal_predictor"
FORMAT = "polyact.policy"
FORMAT_VERSION = "1"


def save_pretrained(policy, directory: str | Path) -> Path:
    """Write `policy` (a VLAPolicy) to `directory`; returns it.

    The files are written into a hidden sibling directory that then replaces `directory` in one rename
    (polyact/atomic.py), so a crash leaves the old policy or the new one, never a torn mix."""
    directory = Path(directory)
    if directory.is_dir() and any(directory.iterdir()) and not (directory / CONFIG_FILE).is_file():
        raise ConfigError(f"{directory} holds other files and no policy: save the policy into a new directory")
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    metadata = {"format": FORMAT, "version": FORMAT_VERSION}
    if policy.config.backbone == "vlm":  # the base's files, LoRA adapters alone, the rest (policies/vlm/policy.py)
        cfg = policy.save_files(tmp, WEIGHTS_FILE, metadata)
    else:
        cfg = _save_trunk_policy(policy, tmp, metadata)
    (tmp / CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
    if policy.env_spec is not None:
        (tmp / ENV_SPEC_FILE).write_text(json.dumps(policy.env_spec.to_dict(), indent=2) + "\n")
    if policy.subgoal_predictor is not None:
        save_pretrained(policy.subgoal_predictor, tmp / SUBGOAL_PREDICTOR_DIR)
    replace_dir_atomic(tmp, directory)
    return directory


def _save_trunk_policy(policy, tmp: Path, metadata: dict[str, str]) -> dict:
    """The weights and pretrained encoders' files of a VLAPolicy; returns its config as saved."""
    cfg = policy.config.to_dict()
    if policy.images is not None and policy.images.pretrained:
        policy.images.backbone.save_files(tmp / VISION_DIR)
        cfg["vision"]["pretrained_path"] = VISION_DIR
    if policy.text.pretrained:
        policy.text.backbone.save_files(tmp / TEXT_DIR)
        cfg["text"]["pretrained_path"] = TEXT_DIR
    save_model(policy, str(tmp / WEIGHTS_FILE), metadata=metadata)
    return cfg


def load_pretrained(directory: str | Path, map_location: str | torch.device = "cpu"):
    """The VLAPolicy saved in `directory`, in eval mode."""
    from polyact.policies.vla import VLAPolicy

    directory = Path(directory)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise ConfigError(f"{str(directory)!r} is not a polyact policy directory: it lacks {name}")
    with safe_open(str(directory / WEIGHTS_FILE), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
        raise ConfigError(
            f"{directory / WEIGHTS_FILE} has format {meta.get('format')!r} version {meta.get('version')!r}; "
            f"this polyact reads {FORMAT!r} version {FORMAT_VERSION!r}"
        )
    cfg = PolicyConfig.from_dict(json.loads((directory / CONFIG_FILE).read_text()))
    if cfg.backbone == "vlm":
        from polyact.policies.vlm.policy import load_vlm_policy

        policy = load_vlm_policy(directory, cfg, read_env_spec(directory), WEIGHTS_FILE)
        return policy.to(map_location).eval()
    for sub in (cfg.vision, cfg.text):
        if sub.encoder == "pretrained" and not Path(sub.pretrained_path).is_absolute():
            sub.pretrained_path = str(directory / sub.pretrained_path)
    policy = VLAPolicy(cfg, load_pretrained_weights=False, env_spec=read_env_spec(directory))
    load_model(policy, str(directory / WEIGHTS_FILE), strict=True, device=str(map_location))
    policy = policy.to(map_location).eval()
    if (directory / SUBGOAL_PREDICTOR_DIR).is_dir():
        policy.attach_subgoal_predictor(load_pretrained(directory / SUBGOAL_PREDICTOR_DIR, map_location))
    return policy


def attach_subgoal_predictor(policy_dir: str | Path, predictor_dir: str | Path) -> Path:
    """Save the sub-goal predictor in `predictor_dir` inside the conditioned policy in `policy_dir`
    (`polyact policy attach-subgoal-predictor`), for a policy trained beside its predictor rather than
    after it (`polyact train subgoal_predictor=` needs the predictor first); returns `policy_dir`."""
    policy = load_pretrained(policy_dir)
    policy.attach_subgoal_predictor(load_pretrained(predictor_dir))
    return save_pretrained(policy, policy_dir)


def read_env_spec(directory: str | Path) -> EnvSpec | None:
    """The environment spec saved with a policy, or None for a directory written before specs were saved."""
    path = Path(directory) / ENV_SPEC_FILE
    if not path.is_file():
        return None
    try:
        return EnvSpec.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path} is not a valid environment spec ({type(err).__name__}: {err})") from None


def write_env_spec(directory: str | Path, spec: EnvSpec) -> Path:
    """Give a policy directory its environment spec (how an old checkpoint is converted)."""
    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file():
        raise ConfigError(f"{str(directory)!r} is not a polyact policy directory: it lacks {CONFIG_FILE}")
    write_json_atomic(directory / ENV_SPEC_FILE, spec.to_dict())
    return directory / ENV_SPEC_FILE
