"""Dead-letter queues: encrypted, TLS-only, kept for the longest time SQS allows."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge


def dead_letter_queue(
    scope: Construct,
    construct_id: str,
    *,
    removal_policy: cdk.RemovalPolicy,
    holds: str,
    of_event_target: bool = True,
) -> sqs.Queue:
    """A DLQ; ``holds`` says what ends up in it. cdk-nag recognizes a queue as a DLQ only
    when another queue or a Lambda function names it, not when an EventBridge target does
    (``of_event_target``), so those are acknowledged."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=cdk.Duration.days(14),
        removal_policy=removal_policy,
    )
    if not of_event_target:
        return queue
    acknowledge(
        queue,
        "AwsSolutions-SQS3",
        f"This queue is itself a dead-letter queue (it holds {holds}); a DLQ of a DLQ "
        "would only move the problem. Its depth is alarmed on.",
    )
    return queue
