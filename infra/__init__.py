"""The CDK app: one Statewright control plane per cdk.json environment (docs/architecture.md)."""
