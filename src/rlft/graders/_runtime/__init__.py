"""The grader runtime: the one implementation of grader semantics.

These modules are copied verbatim into the Bedrock Lambda package (as ``rlft_grader_engine``), so
they may import only the standard library, ``anyio`` and each other; optional metric libraries
(rapidfuzz, rouge-score, nltk) load on first use. ``tests/graders/test_layout.py`` holds the
boundary.
"""
