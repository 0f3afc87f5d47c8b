"""The deterministic hash is frozen: these values must never change across versions."""

import os
import subprocess
import sys

import pytest

from zero_sudo_bus.lockhash import BIGINT_MAX, BIGINT_MIN, canonical_encoding, deterministic_hash

PINNED = [
    (("zero_sudo.relay", "leader"), -6268124723030824649),
    (("zero_sudo.model", "res.partner"), -7379190848285438014),
    (("a",), 2834843666362912549),
    ((1,), -2808845947394920567),
    (("a", 1), 2451243937432073812),
    (("é",), -5765439048162865090),
]


@pytest.mark.parametrize(("parts", "expected"), PINNED)
def test_known_values_are_pinned(parts, expected):
    assert deterministic_hash(*parts) == expected


def test_canonical_encoding_is_compact_utf8_json():
    assert canonical_encoding("a", 1) == b'["a",1]'
    assert canonical_encoding("é") == '["é"]'.encode()


def test_types_and_order_are_part_of_the_key():
    assert deterministic_hash("a", "1") != deterministic_hash("a", 1)
    assert deterministic_hash("a", "b") != deterministic_hash("b", "a")
    assert deterministic_hash("ab") != deterministic_hash("a", "b")


@pytest.mark.parametrize("bad", [1.5, True, None, b"x", ("a",)])
def test_ambiguous_parts_are_refused(bad):
    with pytest.raises(TypeError):
        deterministic_hash("x", bad)


def test_no_parts_is_refused():
    with pytest.raises(ValueError):
        deterministic_hash()


def test_result_fits_postgres_bigint():
    values = [deterministic_hash("k", i) for i in range(2000)]
    assert all(BIGINT_MIN <= v <= BIGINT_MAX for v in values)
    assert any(v < 0 for v in values) and any(v > 0 for v in values)


def test_same_value_under_different_hash_seeds():
    code = "from zero_sudo_bus.lockhash import deterministic_hash as h; print(h('res.partner', 42), hash('res.partner'))"
    outputs = []
    for seed in ("1", "2", "987654"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outputs.append(subprocess.check_output([sys.executable, "-c", code], env=env, text=True).split())
    assert len({ours for ours, _builtin in outputs}) == 1
    assert len({builtin for _ours, builtin in outputs}) == 3, "the builtin hash should differ, or this test proves nothing"
