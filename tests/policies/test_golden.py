"""Golden outputs per action head: stored tiny policies, a stored batch and noise, and the readout, chunk
and loss they gave when the fixtures were written (tests/policies/golden/make_golden.py). A change to
the normaliser, an encoder, the trunk or a head that moves the numbers fails here, even one that every
shape and round-trip test lets through.

Tolerance: rtol 1e-4, atol 1e-5. Inputs and weights are identical bit for bit, so only the order of
float32 sums can differ (the CPU's vector width, the BLAS kernel torch picks): about 1e-6 through these
few layers. Small real changes move them further: the tanh approximation of the GELU in the trunk's MLP
moves the readouts by 2e-4, and fails all five heads.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from polyact.policies import VLAPolicy
from polyact.policies.config import HEADS

GOLDEN = Path(__file__).parent / "golden"
MAKE = runpy.run_path(str(GOLDEN / "make_golden.py"))  # the same `outputs` that wrote the fixtures


@pytest.mark.parametrize("head", MAKE["HEADS"])
def test_stored_policy_reproduces_its_golden_outputs(head):
    policy = VLAPolicy.from_pretrained(GOLDEN / head)
    batch, noise = MAKE["load_inputs"]()
    got = MAKE["outputs"](policy, batch, noise)
    expected = load_file(str(GOLDEN / head / MAKE["EXPECTED"]))
    assert got.keys() == expected.keys()
    for name in ("readout", "chunk", "loss"):  # the first that differs says where the change is
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


def test_every_head_has_a_golden_fixture():
    assert sorted(MAKE["HEADS"]) == sorted(HEADS)
