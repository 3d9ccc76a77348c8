"""AWS list prices the cost benchmark uses: us-east-1, on-demand, without free tiers.

Checked against the AWS pricing pages on the date in ``PRICES_AS_OF``; docs/benchmarks.md
prints them beside the figures, so a reader can re-price with their own."""

from __future__ import annotations

PRICES_AS_OF = "2025-06"
REGION = "us-east-1"

USD_PER_MILLION = {
    # Lambda: requests, and compute per GB-second by architecture.
    "lambda_request": 0.20,
    # DynamoDB on-demand (prices halved on 2024-11-01): per million request units.
    "dynamodb_write_unit": 0.625,
    "dynamodb_read_unit": 0.125,
    # EventBridge custom events put on a bus (each 64 KB chunk of an entry is one).
    "eventbridge_event": 1.00,
    # API Gateway REST API, first 333 million requests a month.
    "apigateway_rest_request": 3.50,
    # API Gateway HTTP API, first 300 million requests a month (each 512 KB of a request
    # is metered as one; the control plane's requests are far smaller).
    "apigateway_http_request": 1.00,
    # S3 Standard: PUT/COPY/POST/LIST per million, GET per million.
    "s3_put": 5.00,
    "s3_get": 0.40,
    # Step Functions Standard workflows: per million state transitions.
    "stepfunctions_transition": 25.00,
}

USD_PER_GB_SECOND = {"arm64": 0.0000133334, "x86_64": 0.0000166667}

# DynamoDB request units: a strongly consistent read unit covers 4 KB, a write unit 1 KB.
READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024
# EventBridge bills each 64 KB chunk of a PutEvents entry as one event.
EVENT_CHUNK_BYTES = 65536
