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
"""

from rlft.graders._result import GradeResult, ItemReference
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

__all__ = [
    "BaseGrader",
    "GradeResult",
    "Grader",
    "ItemReference",
    "LabelModel",
    "Message",
    "Multi",
    "Native",
    "Python",
    "SamplingParams",
    "ScoreModel",
    "StringCheck",
    "SubGrader",
    "TextSimilarity",
    "from_openai",
    "load",
]
