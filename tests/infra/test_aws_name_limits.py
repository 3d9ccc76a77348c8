"""Names AWS limits to 64 characters (EventBridge rules and Scheduler schedules, Lambda
functions, the task runner's name that the dispatcher invokes) fit in every
environment of cdk.json, as tests.aws_limits enforces them on the API side."""

from __future__ import annotations

from tests import aws_limits
from tests.infra.conftest import Synthesized

NAMED = {
    "AWS::Events::Rule": "Name",
    "AWS::Scheduler::Schedule": "Name",
    "AWS::Lambda::Function": "FunctionName",
}


def test_every_fixed_name_fits_awss_64_characters(synth: Synthesized) -> None:
    too_long = [
        (cfn_type, name)
        for cfn_type, key in NAMED.items()
        for resource in synth.of_type(cfn_type).values()
        if isinstance(name := resource["Properties"].get(key), str)
        and len(name) > aws_limits.SCHEDULE_NAME_CHARS
    ]
    assert too_long == []
