"""Regenerate the botocore service-model subset the Bedrock tests check every request against.

rlft's Bedrock providers send requests to five AWS services. The tests validate each request
with botocore's ``ParamValidator`` and with the models' patterns, lengths, ranges and enums,
against a pruned copy of the installed botocore models vendored under
``tests/providers/bedrock/upstream/``. After a botocore upgrade, ``--check`` (and the test that
compares the vendored copy with the installed package) says which shapes changed.

    python scripts/refresh_bedrock_model.py           # rewrite from the installed botocore
    python scripts/refresh_bedrock_model.py --check   # exit 1 if anything would change

Each file holds the listed operations (input only) and every shape their inputs reach, with
documentation stripped. botocore is Apache-2.0 (https://github.com/boto/botocore).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEDROCK_UPSTREAM = ROOT / "tests" / "providers" / "bedrock" / "upstream"

# Every operation the bedrock and bedrock-open-weight providers call, by botocore service.
OPERATIONS: dict[str, tuple[str, ...]] = {
    "bedrock": (
        "CreateModelCustomizationJob",
        "GetModelCustomizationJob",
        "ListModelCustomizationJobs",
        "StopModelCustomizationJob",
        "CreateCustomModelDeployment",
    ),
    "bedrock-runtime": ("Converse",),
    "lambda": (
        "CreateFunction",
        "GetFunction",  # the function_active_v2 / function_updated_v2 waiters
        "GetFunctionConfiguration",
        "UpdateFunctionCode",
        "UpdateFunctionConfiguration",
        "PublishVersion",
    ),
    "iam": (
        "GetRole",
        "CreateRole",
        "PutRolePolicy",
        "ListRolePolicies",
        "GetRolePolicy",
        "ListAttachedRolePolicies",
        "GetPolicy",
        "GetPolicyVersion",
    ),
    "s3": ("HeadObject", "PutObject"),
}
_DROPPED_KEYS = ("documentation", "documentationUrl", "examples")


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in _DROPPED_KEYS}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def prune_botocore_model(service: str, operations: tuple[str, ...]) -> dict[str, Any]:
    """The installed botocore model of ``service`` cut to ``operations`` (their input) and the
    shapes those inputs reach, without documentation."""
    import botocore.session

    loader = botocore.session.get_session().get_component("data_loader")
    model = loader.load_service_model(service, "service-2")
    shapes = model["shapes"]
    kept_ops: dict[str, Any] = {}
    todo: list[str] = []
    for name in operations:
        op = model["operations"][name]
        kept_ops[name] = _strip({k: v for k, v in op.items() if k not in ("output", "errors")})
        if "input" in op:
            todo.append(op["input"]["shape"])
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = shapes[name]
        todo += [shape[key]["shape"] for key in ("member", "key", "value") if key in shape]
        todo += [member["shape"] for member in shape.get("members", {}).values()]
    return {
        "_provenance": {
            "package": "botocore",
            "version": importlib.metadata.version("botocore"),
            "license": "Apache-2.0 (https://github.com/boto/botocore/blob/develop/LICENSE.txt)",
            "source": f"botocore/data/{service}/{model['metadata']['apiVersion']}/service-2.json",
            "generated_by": "scripts/refresh_bedrock_model.py prune_botocore_model()",
        },
        "metadata": _strip(model["metadata"]),
        "operations": kept_ops,
        "shapes": {name: _strip(shapes[name]) for name in sorted(seen)},
    }


def dump(value: Any) -> str:
    """The vendored files' formatting (stable, so diffs show only real changes)."""
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def refresh_bedrock() -> dict[Path, str]:
    """Every vendored botocore subset, by the path it is vendored at."""
    return {
        BEDROCK_UPSTREAM / f"botocore_{service}.json": dump(prune_botocore_model(service, ops))
        for service, ops in OPERATIONS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="report changes, write nothing")
    args = parser.parse_args(argv)
    outputs = refresh_bedrock()
    changed = [p for p, text in outputs.items() if not p.exists() or p.read_text() != text]
    for path in changed:
        print(f"{'would change' if args.check else 'wrote'}: {path.relative_to(ROOT)}")
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(outputs[path])
    if not changed:
        print("vendored botocore models are up to date")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
