import json

import numpy as np
import pytest

from ntkscore.cell.space import OPS, Arch, all_archs, as_arch, unique_archs

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_round_trip_every_cell():
    archs = list(all_archs())
    assert len(archs) == 15625 == len(set(archs))
    for a in archs:
        assert Arch.from_string(a.to_string()) == a
        assert Arch.from_names(a.names) == a


def test_string_order_is_node_by_node():
    a = Arch.from_string("|none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|")
    assert a.ops == (0, 1, 2, 3, 4, 0)
    assert Arch.from_index(0).ops == (0,) * 6 and Arch.from_index(15624).ops == (4,) * 6
    assert as_arch(BEST) == as_arch((3,) * 6) == as_arch(["nor_conv_3x3"] * 6)


def test_isomorphism_classes_match_the_benchmark(data_dir):
    meta = json.loads((data_dir / "nb201" / "meta.json").read_text())["ids"]
    truth, mine = {}, {}
    for index, entry in meta.items():
        arch = Arch.from_string(entry["nb201-string"])
        truth.setdefault(int(entry["isomorph"]), set()).add(int(index))
        mine.setdefault(arch.canonical_string(), set()).add(int(index))
    assert len(meta) == 15625
    assert len(mine) == len(truth) == 6466
    assert {frozenset(v) for v in mine.values()} == {frozenset(v) for v in truth.values()}
    assert len(unique_archs()) == 6466


def test_canonical_representative_is_in_its_class():
    for a in list(all_archs())[::97]:
        rep = a.canonical()
        assert rep.canonical_string() == a.canonical_string() and rep <= a


def test_known_isomorphisms():
    # terms of one sum commute: node 1 copies the input, so conv3x3(0) + conv1x1(1) == conv1x1(0) + conv3x3(1)
    a = Arch.from_string("|skip_connect~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|nor_conv_3x3~0|nor_conv_1x1~1|none~2|")
    b = Arch.from_string("|skip_connect~0|+|none~0|none~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|")
    assert a.canonical_string() == b.canonical_string()
    # an edge whose source is the zero node does not matter
    c = Arch.from_string("|none~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|skip_connect~2|")
    d = Arch.from_string("|none~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    assert c.canonical_string() == d.canonical_string()
    assert Arch((3,) * 6).canonical_string() != Arch((2,) * 6).canonical_string()


def test_dead_cells():
    assert Arch((0,) * 6).is_dead
    # node 3 only reads node 2, which only reads the dead node 1
    assert Arch.from_string("|none~0|+|none~0|conv~1|+|none~0|none~1|skip_connect~2|".replace("conv", "nor_conv_3x3")).is_dead
    assert not Arch.from_string("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|").is_dead
    dead = [a for a in all_archs() if a.is_dead]
    # every dead cell's canonical key has no input term
    assert all("0" not in a.canonical_string() for a in dead)
    assert all(a.ops[3] == 0 for a in dead)  # a direct input->output edge keeps a cell alive unless it is none


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty arch string"),
        ("|nor_conv_3x3~0|", "has 1 node groups"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|none~0|none~1|none~2|", "node 2 in"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv' at edge 0->1"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "names source node 1; expected ~0"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "is not of the form 'op~source'"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "must be enclosed in '|'"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|none~3|", "node 3 in"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "has 4 node groups"),
        ("|NONE~0|+|none~0|none~1|+|none~0|none~1|none~2|", "is not of the form"),
    ],
)
def test_malformed_strings_are_rejected_clearly(text, message):
    with pytest.raises(ValueError, match=message.replace("|", r"\|").replace("(", r"\(")):
        Arch.from_string(text)


@pytest.mark.parametrize(
    "value, message",
    [((0, 1, 2), "has 6 edges, got 3"), ((0, 1, 2, 3, 4, 5), "edge 5 has op index 5"), (42, "cannot read"),
     (("none",) * 5, "expected 6 op names"), (("none",) * 5 + ("conv",), "unknown op 'conv'")],
)
def test_bad_values_are_rejected_clearly(value, message):
    with pytest.raises(ValueError, match=message):
        as_arch(value)


def test_ops_are_the_benchmark_ops():
    assert OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert np.all(np.diff([a.ops for a in unique_archs()], axis=0).any(axis=1))
