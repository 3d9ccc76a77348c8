"""The Machine 1.0 spec: models, loader with line numbers, linter, graph, schema."""
