"""The benchmark functions must compute the right thing, not just run fast."""

from demo.bench import json_roundtrip, matmul, sort_list


def test_matmul_is_deterministic():
    assert matmul(n=8) == matmul(n=8)


def test_sort_list_returns_max():
    assert sort_list(size=100) == 99
    assert sort_list(size=0) == 0


def test_json_roundtrip_keeps_every_record():
    assert json_roundtrip(records=50) == 50
