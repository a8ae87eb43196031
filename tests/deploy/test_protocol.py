"""The wire codec and the request checks, without a server: every refusal names what was wrong and what is valid."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from polyact.contract import FeatureSpec
from polyact.deploy.client import DTYPES, decode_array, decode_arrays, encode_array, packb, unpackb
from polyact.deploy.protocol import (
    RequestError,
    check_observation,
    decode_observations,
    parse_frame,
    parse_seed,
    payload_limit,
)

INPUTS = {
    "rgb/corner": FeatureSpec("uint8", (4, 4, 3)),
    "depth/corner": FeatureSpec("float32", (4, 4)),
    "intrinsics/corner": FeatureSpec("float32", (3, 3)),
    "state": FeatureSpec("float32", (2,)),
}


def valid_observation() -> dict:
    return {
        "rgb/corner": np.zeros((4, 4, 3), np.uint8),
        "depth/corner": np.ones((4, 4), np.float32),
        "intrinsics/corner": np.array([[3, 0, 2], [0, 3, 2], [0, 0, 1]], np.float32),
        "state": np.zeros(2, np.float32),
        "instruction": "open the drawer",
    }


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(st.sampled_from([np.dtype(d) for d in DTYPES]), hnp.array_shapes(min_dims=0, max_dims=4)))
def test_arrays_round_trip_through_msgpack(array):
    decoded = decode_arrays(unpackb(packb({"a": array})))["a"]
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


def test_big_endian_and_strided_arrays_travel_little_endian_and_contiguous():
    array = np.arange(12, dtype=">f4").reshape(3, 4)[:, ::2]
    wire = encode_array(array)
    assert wire["dtype"] == "<f4" and wire["shape"] == [3, 2]
    np.testing.assert_array_equal(decode_array(wire), array)


def test_dtypes_outside_the_wire_set_are_refused_by_name():
    with pytest.raises(TypeError, match=r"complex64 cannot be sent; the wire carries \|b1"):
        encode_array(np.zeros(2, np.complex64))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda w: {**w, "dtype": "<c8"}, "array dtype '<c8' is not one of"),
        (lambda w: {**w, "shape": [2, -1]}, "array shape must be a list of at most 8 ints"),
        (lambda w: {**w, "shape": [2**40, 2**40]}, "array shape must be a list"),
        (lambda w: {**w, "data": w["data"][:-1]}, "array data has 7 bytes; <f4\\[2\\] needs 8"),
        (lambda w: {**w, "data": "text"}, "array data must be bytes"),
        (lambda w: {k: v for k, v in w.items() if k != "shape"}, "expected an array map with keys"),
    ],
)
def test_malformed_wire_arrays_say_what_is_wrong(mutate, message):
    with pytest.raises(ValueError, match=message):
        decode_array(mutate(encode_array(np.zeros(2, np.float32))))


@pytest.mark.parametrize(
    "frame, message",
    [
        ("text", "expected a binary frame"),
        (b"\xc1\x00", "frame is not a msgpack message"),
        (packb([1, 2]), "expected a msgpack map with a 'type' key; got a list"),
        (packb({"type": "act"}), "unknown message type 'act'; valid types: infer, health, metadata"),
        (packb({"type": "health", "id": "7"}), "'id' must be an int, got str"),
        (packb({"type": "health", "extra": 1}), r"unknown keys \['extra'\]; valid keys: type, id"),
        (b"\x80" * 101, "message of 101 bytes exceeds the server's limit of 100 bytes"),
    ],
)
def test_malformed_frames_are_refused_with_the_reason(frame, message):
    with pytest.raises(RequestError, match=message):
        parse_frame(frame, max_bytes=100)


def test_a_wellformed_frame_parses():
    assert parse_frame(packb({"type": "health", "id": 3}), 100) == ("health", 3, {"type": "health", "id": 3})


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda o: o.pop("rgb/corner"), r"lacks \['rgb/corner'\]; the policy reads: instruction \(str, 1..256 chars\)"),
        (lambda o: o.update(extrinsics=np.eye(4)), r"unknown keys \['extrinsics'\]"),
        (lambda o: o.update(state=np.zeros(3, np.float32)), r"state: got float32\[3\], expected float32\[2\]"),
        (lambda o: o.update(state=np.zeros(2, np.float64)), r"state: got float64\[2\], expected float32\[2\]"),
        (lambda o: o.update(state=[0.0, 0.0]), r"state: expected a numpy array float32\[2\], got list"),
        (lambda o: o.update(state=np.array([0, np.nan], np.float32)), "state has non-finite values"),
        (lambda o: o["depth/corner"].__setitem__((0, 0), -np.inf), "depth/corner has non-finite values"),
        (lambda o: o["intrinsics/corner"].__setitem__((1, 1), 0), "intrinsics/corner must be a pinhole matrix"),
        (lambda o: o.update(instruction=""), "instruction must be a str of 1 to 256 characters"),
        (lambda o: o.update(instruction=7), "instruction must be a str of 1 to 256 characters, got 7"),
    ],
)
def test_bad_observations_name_the_key_and_what_is_valid(change, message):
    obs = valid_observation()
    change(obs)
    with pytest.raises(RequestError, match=message):
        check_observation(obs, INPUTS)


def test_depth_may_report_no_return_as_infinity():
    obs = valid_observation()
    obs["depth/corner"][0, 0] = np.inf
    assert check_observation(obs, INPUTS)["depth/corner"][0, 0] == np.inf


def test_infer_messages_decode_to_checked_observations():
    wire = unpackb(packb({"type": "infer", "observations": [valid_observation(), valid_observation()]}))
    steps = decode_observations(wire, INPUTS, history=2)
    assert len(steps) == 2 and steps[1]["rgb/corner"].dtype == np.uint8
    with pytest.raises(RequestError, match="'observations' must be a list of 1 to 2 observation maps"):
        decode_observations({**wire, "observations": wire["observations"] * 2}, INPUTS, history=2)
    with pytest.raises(RequestError, match="observation 0: state: array data has"):
        broken = {**wire["observations"][0], "state": {**wire["observations"][0]["state"], "data": b""}}
        decode_observations({"observations": [broken]}, INPUTS, history=2)


def test_seeds_and_payload_limit():
    assert parse_seed({}) is None and parse_seed({"seed": 5}) == 5
    for bad in (-1, 2**63, True, 1.5):
        with pytest.raises(RequestError, match=r"'seed' must be an int in \[0, 2\*\*63\)"):
            parse_seed({"seed": bad})
    one_step = 48 + 64 + 36 + 8 + 4 * 256
    assert payload_limit(INPUTS, history=2) == 2 * 2 * one_step + 65536
