"""`polyact policy attach-subgoal-predictor`: a conditioned policy trained beside its predictor gets it
afterwards, and acts on the predictor's sub-goals once loaded."""

from __future__ import annotations

import numpy as np

from polyact.cli import main
from polyact.policies import VLAPolicy

from .test_gravmap import conditioned_policy, predictor, subgoal_batch


def test_the_predictor_is_saved_inside_the_policy_directory(synthetic, tmp_path, capsys):
    conditioned_policy(synthetic).save_pretrained(tmp_path / "policy")
    helper = predictor(synthetic)
    helper.save_pretrained(tmp_path / "predictor")
    assert main(["policy", "attach-subgoal-predictor", str(tmp_path / "policy"), str(tmp_path / "predictor")]) == 0
    assert "sub-goals now come from" in capsys.readouterr().out
    loaded = VLAPolicy.from_pretrained(tmp_path / "policy")
    batch = subgoal_batch(synthetic, [0.0] * 7)
    del batch["obs/subgoal"]
    expected = conditioned_policy(synthetic).eval()
    expected.attach_subgoal_predictor(helper)
    np.testing.assert_allclose(loaded.predict_chunk(batch), expected.predict_chunk(batch), atol=1e-5)


def test_a_policy_without_subgoal_conditioning_is_refused(synthetic, tmp_path, capsys):
    predictor(synthetic).save_pretrained(tmp_path / "plain")
    predictor(synthetic).save_pretrained(tmp_path / "predictor")
    assert main(["policy", "attach-subgoal-predictor", str(tmp_path / "plain"), str(tmp_path / "predictor")]) == 2
    assert "not conditioned on sub-goals" in capsys.readouterr().err
    assert main(["policy", "attach-subgoal-predictor", str(tmp_path / "plain")]) == 2
    assert "usage: polyact policy attach-subgoal-predictor DIR PREDICTOR" in capsys.readouterr().err
