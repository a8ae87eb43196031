"""polyact.policies: vision-language-action policies with interchangeable action heads.

    from polyact.policies import PolicyConfig, HeadConfig, build_policy, VLAPolicy
    policy = build_policy(PolicyConfig(size="small", head=HeadConfig(name="diffusion")), env_spec, stats, instructions)
    loss, metrics = policy.compute_loss(batch)         # a window-loader batch
    policy.save_pretrained("runs/x/policy")            # weights, config and the environment spec
    policy = VLAPolicy.from_pretrained("runs/x/policy")
    chunk = policy.predict_chunk(observation)          # (B, H, A) raw units
    runner = ChunkRunner(policy, num_slots=4)          # over time: history, chunk execution, seeded noise

Code map: config.py (configs and sizes), normalize.py (statistics), vision.py + ego3d.py + pretrained.py
(image tokens), language.py (instruction tokens), trunk.py (transformer), heads/ (action heads), vla.py
(the policy), history.py + chunking.py (inference over time), policy_dir.py (save/load). See
docs/policies.md.

Names are imported on first use (PEP 562), so `polyact.policies.config` loads without torch.
"""

from __future__ import annotations

from polyact.lazy import lazy_exports

_EXPORTS = {
    "ChunkRunner": "chunking",
    "RecedingHorizon": "chunking",
    "TemporalEnsemble": "chunking",
    "make_executor": "chunking",
    "plan_chunks": "chunking",
    "HeadConfig": "config",
    "PolicyConfig": "config",
    "TextConfig": "config",
    "VisionConfig": "config",
    "VLMConfig": "config",
    "ObservationHistory": "history",
    "build_vocab": "language",
    "MissingStatisticError": "normalize",
    "RandomShift": "vision",
    "VLAPolicy": "vla",
    "build_policy": "vla",
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
