"""Compile targets: OpenAI/Azure grader JSON, TRL reward functions, Bedrock Lambda packages.

Use ``rlft.graders.compile(grader, target)``; these modules are its implementation.
"""
