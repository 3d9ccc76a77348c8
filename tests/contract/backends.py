"""Every Store the contract suite runs against. Each backend module lists factories:
context managers that yield a fresh, empty Store. A backend whose dependency is missing
must fail loudly, never skip: the suite's point is that every store passes."""

from __future__ import annotations

from tests.contract.backends_aws import AWS_BACKENDS
from tests.contract.backends_local import LOCAL_BACKENDS

BACKENDS = {**LOCAL_BACKENDS, **AWS_BACKENDS}
