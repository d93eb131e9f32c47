"""Regenerate the upstream artifacts vendored under tests/ from installed packages and specs.

rlft's hosted backends are pinned to what the providers published (docs/verification.md). Some
of those artifacts come from installed packages; this script rewrites them, so after a package
upgrade ``git diff`` shows what changed shape, and the tests that compare the vendored copy with
the installed package fail until someone looks.

    python scripts/refresh_upstream.py                    # rewrite from installed packages
    python scripts/refresh_upstream.py --check            # exit 1 if anything would change
    python scripts/refresh_upstream.py --openai-spec openapi.json --openai-spec-commit f85dbe2...
                                                          # also re-prune OpenAI's OpenAPI spec

What it writes:

- ``tests/providers/openai/upstream/openai_types.json``: JSON Schemas of the ``openai`` package's
  fine-tuning request and response types (``openai_types``).
- ``tests/providers/openai/upstream/openai_openapi.pruned.json``: with ``--openai-spec``, the
  schemas and paths rlft sends to or reads from, cut out of openai/openai-openapi
  (``prune_openai_spec``).
- The botocore Bedrock subset, through ``refresh_bedrock`` (a hook for the Bedrock tests: it
  writes only when ``tests/providers/bedrock/upstream/`` exists).

The Azure artifacts are hand-pruned from Azure/azure-rest-api-specs (too large to fetch here);
their provenance is in ``tests/providers/openai/upstream/README.md``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OPENAI_UPSTREAM = ROOT / "tests" / "providers" / "openai" / "upstream"
BEDROCK_UPSTREAM = ROOT / "tests" / "providers" / "bedrock" / "upstream"

# The OpenAPI schemas rlft's requests and parsers touch (their $ref closure is kept too).
OPENAI_SCHEMAS = (
    "CreateFineTuningJobRequest",
    "RunGraderRequest",
    "ValidateGraderRequest",
    "FineTuningJob",
    "FineTuningJobEvent",
    "FineTuningJobCheckpoint",
    "CreateFileRequest",
    "CreateChatCompletionRequest",
)
OPENAI_PATHS = (
    "/files",
    "/files/{file_id}",
    "/files/{file_id}/content",
    "/fine_tuning/jobs",
    "/fine_tuning/jobs/{fine_tuning_job_id}",
    "/fine_tuning/jobs/{fine_tuning_job_id}/cancel",
    "/fine_tuning/jobs/{fine_tuning_job_id}/pause",
    "/fine_tuning/jobs/{fine_tuning_job_id}/resume",
    "/fine_tuning/jobs/{fine_tuning_job_id}/events",
    "/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints",
    "/fine_tuning/alpha/graders/run",
    "/fine_tuning/alpha/graders/validate",
)


def _dump(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


# --- the openai package ---------------------------------------------------------------------------


def openai_types() -> dict[str, Any]:
    """JSON Schemas of the installed ``openai`` package's fine-tuning types.

    Requests are ``TypedDict`` params (through pydantic's ``TypeAdapter``); responses are the
    package's pydantic models. A shape change in an upgrade changes this output.
    """
    from openai.types.fine_tuning import (
        FineTuningJob,
        FineTuningJobEvent,
        JobCreateParams,
        JobListParams,
    )
    from openai.types.fine_tuning.alpha import GraderRunParams, GraderValidateParams
    from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint
    from pydantic import TypeAdapter

    requests: dict[str, Any] = {
        "JobCreateParams": JobCreateParams,
        "JobListParams": JobListParams,
        "GraderRunParams": GraderRunParams,
        "GraderValidateParams": GraderValidateParams,
    }
    responses: dict[str, Any] = {
        "FineTuningJob": FineTuningJob,
        "FineTuningJobEvent": FineTuningJobEvent,
        "FineTuningJobCheckpoint": FineTuningJobCheckpoint,
    }
    schemas = {name: TypeAdapter(kind).json_schema() for name, kind in requests.items()}
    schemas.update({name: kind.model_json_schema() for name, kind in responses.items()})
    return {
        "_provenance": {
            "package": "openai",
            "version": importlib.metadata.version("openai"),
            "license": "Apache-2.0",
            "source": "https://pypi.org/project/openai/ (openai/openai-python)",
            "generated_by": "scripts/refresh_upstream.py openai_types()",
        },
        "schemas": schemas,
    }


# --- OpenAI's OpenAPI spec ------------------------------------------------------------------------


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value.rsplit("/", 1)[-1])
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def prune_openai_spec(spec: dict[str, Any], *, commit: str) -> dict[str, Any]:
    """The part of openai/openai-openapi rlft is checked against: ``OPENAI_PATHS`` and the
    ``$ref`` closure of ``OPENAI_SCHEMAS`` (plus whatever those paths reference)."""
    schemas = spec["components"]["schemas"]
    paths = {path: spec["paths"][path] for path in OPENAI_PATHS if path in spec["paths"]}
    todo = list(OPENAI_SCHEMAS)
    seen: set[str] = set()
    parameters: set[str] = set()
    _refs(paths, parameters)
    todo += [name for name in parameters if name in schemas]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(schemas[name], found)
        todo += sorted(found - seen)
    components: dict[str, Any] = {"schemas": {name: schemas[name] for name in sorted(seen)}}
    for kind in ("parameters", "responses"):
        kept = {k: v for k, v in spec["components"].get(kind, {}).items() if k in parameters}
        if kept:
            components[kind] = kept
    return {
        "_provenance": {
            "source": "https://github.com/openai/openai-openapi (openapi.json)",
            "commit": commit,
            "version": spec["info"]["version"],
            "license": "MIT",
            "pruned_by": "scripts/refresh_upstream.py prune_openai_spec()",
        },
        "openapi": spec["openapi"],
        "info": spec["info"],
        "paths": paths,
        "components": components,
    }


# --- botocore (the Bedrock tests' hook) -----------------------------------------------------------


def prune_botocore_model(service: str, operations: Iterable[str]) -> dict[str, Any]:
    """The installed botocore service model cut to ``operations`` and the shapes they reach."""
    import botocore.session

    loader = botocore.session.get_session().get_component("data_loader")
    model = loader.load_service_model(service, "service-2")
    shapes = model["shapes"]
    kept_ops = {name: model["operations"][name] for name in operations}
    todo = [
        op[key]["shape"] for op in kept_ops.values() for key in ("input", "output") if key in op
    ]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = shapes[name]
        for key in ("member", "key", "value"):
            if key in shape:
                todo.append(shape[key]["shape"])
        todo += [member["shape"] for member in shape.get("members", {}).values()]
    return {
        "_provenance": {
            "package": "botocore",
            "version": importlib.metadata.version("botocore"),
            "license": "Apache-2.0",
            "service": service,
            "apiVersion": model["metadata"].get("apiVersion"),
            "generated_by": "scripts/refresh_upstream.py prune_botocore_model()",
        },
        "metadata": model["metadata"],
        "operations": kept_ops,
        "shapes": {name: shapes[name] for name in sorted(seen)},
    }


BEDROCK_OPERATIONS = (
    "CreateModelCustomizationJob",
    "GetModelCustomizationJob",
    "ListModelCustomizationJobs",
    "StopModelCustomizationJob",
)


def refresh_bedrock() -> dict[Path, str]:
    """TODO(bedrock helper): the botocore Bedrock subset, written only when the Bedrock tests
    keep a ``tests/providers/bedrock/upstream/`` folder; adjust ``BEDROCK_OPERATIONS`` and the
    file name to what those tests read."""
    if not BEDROCK_UPSTREAM.is_dir():
        return {}
    model = prune_botocore_model("bedrock", BEDROCK_OPERATIONS)
    return {BEDROCK_UPSTREAM / "botocore_bedrock.json": _dump(model)}


# --- main -----------------------------------------------------------------------------------------


def from_packages() -> dict[Path, str]:
    """Every artifact derived from an installed package, by the path it is vendored at."""
    outputs = {OPENAI_UPSTREAM / "openai_types.json": _dump(openai_types())}
    outputs.update(refresh_bedrock())
    return outputs


REFRESHERS: list[Callable[[], dict[Path, str]]] = [from_packages]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="report changes, write nothing")
    parser.add_argument("--openai-spec", type=Path, help="an openai-openapi openapi.json")
    parser.add_argument("--openai-spec-commit", default="unknown")
    args = parser.parse_args(argv)
    outputs: dict[Path, str] = {}
    for refresh in REFRESHERS:
        outputs.update(refresh())
    if args.openai_spec:
        spec = json.loads(args.openai_spec.read_text())
        pruned = prune_openai_spec(spec, commit=args.openai_spec_commit)
        outputs[OPENAI_UPSTREAM / "openai_openapi.pruned.json"] = _dump(pruned)
    changed = [p for p, text in outputs.items() if not p.exists() or p.read_text() != text]
    for path in changed:
        print(f"{'would change' if args.check else 'wrote'}: {path.relative_to(ROOT)}")
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(outputs[path])
    if not changed:
        print("vendored upstream artifacts are up to date")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
