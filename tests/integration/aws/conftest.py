"""The moto deployment's fixtures (tests/integration/aws/deployment.py)."""

from tests.integration.aws.deployment import aws, deployment, table_from_template

__all__ = ["aws", "deployment", "table_from_template"]
