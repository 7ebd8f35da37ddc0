"""Parses Prometheus text exposition from stdin with the reference Python client's
parser (prometheus_client.parser) and prints the samples as JSON lines:
{"name": ..., "labels": {...}, "value": ..., "type": ...}. Exits 1 on a parse error."""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

try:
    for family in text_string_to_metric_families(sys.stdin.read()):
        for s in family.samples:
            v = s.value
            print(json.dumps({
                "name": s.name,
                "labels": s.labels,
                "value": None if isinstance(v, float) and math.isnan(v) else v,
                "type": family.type,
            }))
except Exception as e:  # noqa: BLE001 - any parse failure fails the test
    print(f"parse error: {e}", file=sys.stderr)
    sys.exit(1)
