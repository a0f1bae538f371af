"""JSON Schemas of the Kafka message and of each index document, and the index templates."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

INDEX_KINDS = ("articles", "entities", "quotes")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A packaged JSON Schema by short name: message, article, entity, quote or dead_letter."""
    return json.loads(resources.files(__name__).joinpath(f"{name}.schema.json").read_text("utf-8"))


def index_templates(prefix: str = "khabar") -> dict[str, dict[str, Any]]:
    """Return the composable index templates keyed by template name, with the prefix filled in."""
    raw = resources.files(__name__).joinpath("index_templates.json").read_text("utf-8")
    templates = json.loads(raw.replace("{prefix}", prefix))
    templates.pop("_comment", None)
    return {f"{prefix}-{kind}": body for kind, body in templates.items()}
