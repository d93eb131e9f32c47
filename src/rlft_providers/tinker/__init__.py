"""The ``tinker`` backend: rlft's GRPO loop and graders on a Tinker-protocol training service."""
