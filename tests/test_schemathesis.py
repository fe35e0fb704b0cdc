"""Schemathesis against /openapi.json of a real server, with and without a token: no server error, and every
answer (status, content type, headers, body) is one the document describes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PHOTOS

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]


@pytest.mark.parametrize("token", [None, "schemathesis-token-123456"], ids=["no token", "token"])
def test_every_operation_conforms_to_the_document(start_appliance, token):
    client = start_appliance(api_token=token) if token else start_appliance()
    client.ingest(PHOTOS)  # real images, albums and people for the generated requests to meet
    client.post("/albums/create-album", json={"name": "Pets"})
    client.post("/albums/add-multiple-to-album", json={"album_name": "Pets", "paths": [str(PHOTOS / "cat.png")]})
    checks = CHECKS + (["ignored_auth"] if token else [])
    command = [
        str(Path(sys.executable).parent / "st"),
        "run",
        client.url + "/openapi.json",
        "--checks",
        ",".join(checks),
        "--max-examples",
        "25",
        "--seed",
        "20261128",
        "--workers",
        "2",
        "--no-color",
    ]
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-6000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", result.stdout)
    assert selected and selected[1] == selected[2] and int(selected[1]) >= 30, result.stdout[-3000:]
    assert f"Tested: {selected[1]}" in result.stdout, "every operation was reached"
