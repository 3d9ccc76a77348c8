"""Every Store the contract suite runs against. Each backend module lists factories:
context managers that yield a fresh, empty Store. A backend whose dependency is missing
must fail loudly, never skip: the suite's point is that every store passes."""

from __future__ import annotations

import pytest

from tests.contract.backends_aws import AWS_BACKENDS
from tests.contract.backends_local import LOCAL_BACKENDS

BACKENDS = {**LOCAL_BACKENDS, **AWS_BACKENDS}


def backend_params() -> list[object]:
    """The backends' names as pytest parameters; dynalite's carry the ``dynalite`` mark
    (it needs node and the dynalite package), so ``-m "not dynalite"`` leaves them out."""
    return [
        pytest.param(name, marks=pytest.mark.dynalite) if "dynalite" in name else name
        for name in sorted(BACKENDS)
    ]
