"""Graders: the neutral spec, the local engine and the translation layer for every backend.

Write a grader once, test it on your own samples, and run the same semantics on OpenAI, Azure,
Bedrock (a Lambda package) and locally with TRL:

```python
from rlft import graders as g

grader = g.StringCheck(name="label", input="{{ sample.output_json.label }}",
                       reference="{{ item.label }}", operation="eq")
result = await grader.grade('{"label": "billing"}', {"label": "billing"})   # score 1.0
payload = g.compile(grader, "openai")                                        # OpenAI JSON
```

Everything heavy (rapidfuzz, rouge-score, nltk, httpx, boto3, the sandbox) loads on first use.
"""

from rlft.graders._compile import (
    FORMATS,
    compile,
    support_columns,
    support_matrix,
    support_table_markdown,
)
from rlft.graders._grading import grade_many, item_references
from rlft.graders._result import ERROR_KINDS, GradeResult, ItemReference
from rlft.graders._runtime.judge import (
    BedrockJudge,
    Embedder,
    Judge,
    JudgeRequest,
    JudgeResponse,
    OpenAIJudge,
)
from rlft.graders._spec import (
    BaseGrader,
    Grader,
    LabelModel,
    Message,
    Multi,
    Native,
    Python,
    SamplingParams,
    ScoreModel,
    StringCheck,
    SubGrader,
    TextSimilarity,
    from_openai,
    load,
)
from rlft.graders.formats.lambda_ import LambdaPackage
from rlft.graders.formats.trl import RewardFunction

__all__ = [
    "BaseGrader",
    "BedrockJudge",
    "compile",
    "Embedder",
    "ERROR_KINDS",
    "FORMATS",
    "from_openai",
    "grade_many",
    "Grader",
    "GradeResult",
    "item_references",
    "ItemReference",
    "Judge",
    "JudgeRequest",
    "JudgeResponse",
    "LabelModel",
    "LambdaPackage",
    "load",
    "Message",
    "Multi",
    "Native",
    "OpenAIJudge",
    "Python",
    "RewardFunction",
    "SamplingParams",
    "ScoreModel",
    "StringCheck",
    "SubGrader",
    "support_columns",
    "support_matrix",
    "support_table_markdown",
    "TextSimilarity",
]
