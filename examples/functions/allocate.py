"""The demo's lambda task: allocate a preview environment's name and URL.

Locally `statewright serve --functions examples/functions` runs this file's handler in a
subprocess; on AWS the same handler would be a Lambda function named `allocate`.

To try a failure and a retry: metadata `fail_attempts: N` makes its first N attempts fail
(the spec allows 2 attempts, so with N = 2 the task fails, and a retry succeeds)."""

from __future__ import annotations

import re
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    machine_id = event["machine_id"]
    domain = event["args"].get("domain", "example.test")
    slug = re.sub(r"[^a-z0-9-]", "-", machine_id.lower())
    owner = event["metadata"].get("owner", "nobody")
    if event["attempt"] <= int(event["metadata"].get("fail_attempts") or 0):
        raise RuntimeError(f"asked to fail attempt {event['attempt']} (metadata fail_attempts)")
    print(f"allocating {slug} for {owner} (attempt {event['attempt']})")
    return {"hostname": f"{slug}.{domain}", "url": f"https://{slug}.{domain}", "owner": owner}
