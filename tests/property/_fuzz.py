"""Shared hypothesis strategies of the fuzz tests (tests/property/test_fuzz_*.py).

The default tier keeps example counts small; ``FUZZ_EXAMPLES=20000`` (or the ``fuzz`` hypothesis profile,
``HYPOTHESIS_PROFILE=fuzz``) scales every fuzz test up. ``deadline=None``: shared machines stall.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from fabric.testing.fuzz import KINDS, Mutation

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5000" if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else "60"))
"""Examples per fuzz test."""

FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
"""Settings of every fuzz test."""

KEYS = st.sampled_from(["s", "op", "e", "p", "o", "m", "i", "in", "id", "tp", "ep", "md", "nm", "t", "h", "n", "w", "d", ""])

hostile: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64 - 1, 255, 256])
    | st.floats()
    | st.text(max_size=40) | st.just("x" * 300)
    | st.binary(max_size=64)
    | st.binary(min_size=16, max_size=16),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(KEYS | st.text(max_size=4), children, max_size=6),
    max_leaves=12,
)
"""Values a hostile peer might put anywhere (msgpack-native)."""

mutations = st.lists(
    st.builds(Mutation, st.integers(0, 2**16), st.sampled_from(KINDS), hostile | st.integers(0, 2**16)),
    min_size=1, max_size=4,
)
"""One to four structural mutations (see fabric.testing.fuzz.mutate)."""
