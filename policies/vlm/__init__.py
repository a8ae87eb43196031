"""polyact.policies.vlm: a pretrained vision-language model as the policy (policy.backbone=vlm).

Code map: families.py (what differs between PaliGemma, Idefics3/SmolVLM, ...), action_tokens.py
(OpenVLA's action ids), backbone.py (loading from a local directory, inputs, loss logits, greedy
decoding, fine-tuning modes), policy.py (VLMPolicy, VLAPolicy's interface; its policy directory).
See docs/policies.md. Nothing here is imported unless a config names backbone=vlm.
"""
