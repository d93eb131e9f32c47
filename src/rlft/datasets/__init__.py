"""Datasets: load rows, validate them against a backend's rules and a grader, render per backend.

A row is one JSON object: ``messages`` (the prompt, chat format), optional ``tools``, and any
other keys, the *item* fields a grader reads as ``{{ item.<field> }}``:

    {"messages": [{"role": "user", "content": "My card was charged twice"}], "label": "billing"}

Content parts may hold images (``rlft.datasets.images`` has the one shape rows keep and the
helpers to encode and inspect them); each backend's rules limit them.

```python
ds = Dataset.from_jsonl("tickets.jsonl")        # raises DatasetValidationError listing all problems
train, valid = ds.split(validation=0.1, seed=7, stratify="label")
report = train.validate(provider="azure", grader=grader, validation=valid)   # a provider id
print(report)                                   # grouped by kind, with lines and a fix for each
report = check_file("tickets.jsonl", provider="bedrock")   # streams; never raises for content
```
"""

from rlft.datasets._checks import DatasetRole
from rlft.datasets._dataset import Dataset, Example
from rlft.datasets._render import TRL_RESERVED_FIELDS, render, render_prompt, to_trl_rows
from rlft.datasets._report import Problem, Severity, ValidationReport
from rlft.datasets._rules import DatasetRules
from rlft.datasets._validate import check_file

__all__ = [
    "check_file",
    "Dataset",
    "DatasetRole",
    "DatasetRules",
    "Example",
    "Problem",
    "render",
    "render_prompt",
    "Severity",
    "to_trl_rows",
    "TRL_RESERVED_FIELDS",
    "ValidationReport",
]

for _cls in (Dataset, Example, Problem, ValidationReport, DatasetRules):
    _cls.__module__ = "rlft.datasets"
del _cls
