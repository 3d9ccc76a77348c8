"""docs/openapi.json is the document the API serves; regenerate it with `make openapi`."""

from __future__ import annotations

import json

from statewright.local.control_plane import LocalControlPlane
from statewright.local.openapi import REGENERATE, render

from tests.integration.local.helpers import REPO

CHECKED_IN = REPO / "docs" / "openapi.json"


def test_checked_in_openapi_matches_the_routes() -> None:
    assert CHECKED_IN.read_text(encoding="utf-8") == render(), (
        f"docs/openapi.json is out of date with statewright/api.py; run `{REGENERATE}`"
    )


def test_openapi_is_served_and_documents_every_route(plane: LocalControlPlane) -> None:
    response = plane.request("GET", "/openapi.json")
    assert response.status == 200
    assert response.body == json.loads(CHECKED_IN.read_text(encoding="utf-8"))
    paths = response.body["paths"]
    assert set(paths) == {
        "/specs",
        "/specs/{name}",
        "/machines",
        "/machines/{machine_id}",
        "/machines/{machine_id}/events",
        "/machines/{machine_id}/history",
        "/machines/{machine_id}/retry",
        "/machines/{machine_id}/ttl",
    }
    create = paths["/machines"]["post"]["responses"]
    assert set(create) == {"201", "400", "403", "404", "409", "413", "503"}
    assert "Retry-After" in create["503"]["headers"]
    # Powertools' default 422 is not an answer of this API
    assert "422" not in json.dumps(paths)
