"""The moto deployment of tests/integration/aws (table with the synthesized template's key schema,
bus, task runner, CodeBuild project, the three handlers)."""

from tests.integration.aws.conftest import aws, deployment, table_from_template

__all__ = ["aws", "deployment", "table_from_template"]
