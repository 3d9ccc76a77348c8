"""Executor plugins: what the linter knows of each executor (its name, its config model,
its default timeout). Runtime adapters that actually run tasks live in statewright.local
and statewright.aws and are looked up by the same name."""
