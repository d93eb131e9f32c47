"""The AWS Bedrock backend: Nova RFT jobs graded by a Lambda rlft builds from the neutral grader.

Not API: users name the provider ``"bedrock"``; plugin authors import from ``rlft.provider``.
"""
