"""The OpenAPI document spells out every mutation's arguments (the app's generated types check them)."""

from typing import Any, get_args

from api.main import create_app
from api.sync.schemas import MutationName


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def test_every_mutation_has_its_arguments_documented_and_every_reference_resolves() -> None:
    document = create_app().openapi()
    schemas = document["components"]["schemas"]
    mapping = schemas["Mutation"]["discriminator"]["mapping"]
    assert set(mapping) == set(get_args(MutationName))
    for name, ref in mapping.items():
        variant = schemas[ref.rsplit("/", 1)[1]]
        assert variant["properties"]["name"]["const"] == name
        args = schemas[variant["properties"]["args"]["$ref"].rsplit("/", 1)[1]]
        assert args["additionalProperties"] is False and args["properties"]
    assert "id" in schemas["DealMoveArgs"]["required"] and "stage_id" in schemas["DealMoveArgs"]["required"]
    missing = {ref for ref in _refs(document) if ref.rsplit("/", 1)[1] not in schemas}
    assert missing == set()
