"""The process environment of a benchmark that runs the Lambda handlers in-process under
moto: fake credentials and exactly the control plane's settings (docs/aws.md#configuration),
as tests/integration/aws/deployment.py names its resources."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def control_plane_environment() -> dict[str, str]:
    """Every variable the dispatcher's settings require, for the moto deployment."""
    from statewright.aws import settings as settings_module

    from tests.integration.aws import deployment as aws

    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": aws.REGION,
        "STATEWRIGHT_ENV": "bench",
        "STATEWRIGHT_TABLE": aws.TABLE,
        "STATEWRIGHT_BUS": aws.BUS,
        "STATEWRIGHT_TASK_RUNNER": aws.TASK_RUNNER,
        "STATEWRIGHT_TERRAFORM_PROJECT": aws.PROJECT,
        "STATEWRIGHT_STATE_BUCKET": aws.STATE_BUCKET,
        "STATEWRIGHT_SCHEDULE_GROUP": aws.SCHEDULE_GROUP,
        "STATEWRIGHT_SCHEDULER_ROLE_ARN": aws.SCHEDULER_ROLE_ARN,
        "STATEWRIGHT_DISPATCHER_ARN": aws.DISPATCHER_ARN,
        "STATEWRIGHT_SPECS_DIR": str(REPO / "specs"),
    }
    assert set(settings_module.ENV_VARS) <= set(env) | {"STATEWRIGHT_SPECS_DIR"}
    return env


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` set in os.environ while the block runs, the previous ones restored."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
