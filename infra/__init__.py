"""The CDK app: one Statewright control plane per cdk.json environment (DESIGN.md §5)."""
