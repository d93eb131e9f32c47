"""``rlft serve``: the OpenAI fine-tuning API, a grader endpoint and a dashboard, on any backend.

Point an OpenAI SDK's ``base_url`` at the server and the same calls run reinforcement
fine-tuning on the local runner, Bedrock, Azure or any plugin backend:

```python
from rlft.serve import ServeOptions, create_app
app = create_app(ServeOptions(provider="fake", keys=("sk-test",)))   # any ASGI server runs it
```

Starlette and uvicorn (the ``serve`` extra) load only when this package's app is built, so
``import rlft`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlft.serve._options import ApiKey, ServeOptions, load_keys

if TYPE_CHECKING:
    from rlft.serve._app import create_app

__all__ = ["ApiKey", "ServeOptions", "create_app", "load_keys"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from rlft.serve._app import create_app

        return create_app
    raise AttributeError(f"module 'rlft.serve' has no attribute {name!r}")
