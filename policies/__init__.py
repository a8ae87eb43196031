"""polyact.policies: vision-language-action policies with interchangeable action heads.

    from polyact.policies import PolicyConfig, HeadConfig, build_policy, VLAPolicy
    policy = build_policy(PolicyConfig(size="small", head=HeadConfig(name="diffusion")), env_spec, stats, instructions)
    loss, metrics = policy.compute_loss(batch)         # a window-loader batch
    policy.save_pretrained("runs/x/policy")
    policy = VLAPolicy.from_pretrained("runs/x/policy")
    chunk = policy.predict_chunk(observation)          # (B, H, A) raw units

Code map: config.py (configs and sizes), normalize.py (statistics), vision.py + ego3d.py + pretrained.py
(image tokens), language.py (instruction tokens), trunk.py (transformer), heads/ (action heads), vla.py
(the policy), history.py + chunking.py (inference over time), checkpoint.py (save/load). See docs/policies.md.
"""

from polyact.policies.chunking import ChunkRunner, RecedingHorizon, TemporalEnsemble, make_executor
from polyact.policies.config import HeadConfig, PolicyConfig, TextConfig, VisionConfig
from polyact.policies.history import ObservationHistory
from polyact.policies.language import build_vocab
from polyact.policies.normalize import MissingStatisticError
from polyact.policies.vision import RandomShift
from polyact.policies.vla import VLAPolicy, build_policy

__all__ = [
    "ChunkRunner",
    "HeadConfig",
    "MissingStatisticError",
    "ObservationHistory",
    "PolicyConfig",
    "RandomShift",
    "RecedingHorizon",
    "TemporalEnsemble",
    "TextConfig",
    "VLAPolicy",
    "VisionConfig",
    "build_policy",
    "build_vocab",
    "make_executor",
]
