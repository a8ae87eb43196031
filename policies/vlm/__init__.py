"""polyact.policies.vlm: a pretrained vision-language model as the policy (policy.backbone=vlm).

Code map: families.py (what differs between PaliGemma, Idefics3/SmolVLM, ...), action_tokens.py
(OpenVLA's action ids), grid_tokens.py (SpatialVLA's grid-cell tokens added to the vocabulary),
expert.py (pi0's action expert over the VLM's KV cache) and expert_heads.py (flow, diffusion or L1
driving it), ego3d.py (SpatialVLA's Ego3D added to the vision tower's patch features), backbone.py
(loading from a local directory, inputs, loss logits, greedy decoding, the expert's prefix cache,
fine-tuning modes), prefix_cache.py (that cache, kept under gradient checkpointing), policy.py
(VLMPolicy, VLAPolicy's interface; its policy directory), tiny.py (tiny random base models for tests
and benchmarks).
See docs/policies.md. Nothing here is imported unless a config names backbone=vlm.
"""
