"""The moto deployment of tests/integration/aws (tests/integration/aws/deployment.py):
table with the synthesized key schema, bus, task runner, CodeBuild project, the three
handlers."""

from tests.integration.aws.deployment import aws, deployment, table_from_template

__all__ = ["aws", "deployment", "table_from_template"]
