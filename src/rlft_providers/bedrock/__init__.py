"""The AWS Bedrock backend: Nova RFT jobs graded by a Lambda rlft builds from the neutral grader.

Not API: users name the provider ``"bedrock"`` (Nova) or ``"bedrock-open-weight"`` (gpt-oss, Qwen3
on the OpenAI-compatible endpoint); plugin authors import from ``rlft.provider``.
"""
