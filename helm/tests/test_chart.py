#!/usr/bin/env python3
"""Tests of the myinfo-proxy Helm chart, with no helm binary, no cluster and no network.

    python3 -m pip install -r helm/tests/requirements.txt
    python3 helm/tests/test_chart.py

Renders every mode and option combination with Helm's own library (helm-python-sdk), runs
Helm lint, validates every manifest against the Kubernetes schemas (kubernetes-validate), and
checks what an operator would check: security settings, probes, session affinity, grace
period, checksums, key Secret use, NetworkPolicy rules, the Redis wiring (URL Secret, seal keys,
fallback_replicas), NOTES warnings, refusal of bad values, the example app chart of the chart
README, and, when a myinfo-proxy binary is at hand, that the proxy accepts every rendered
config.toml (`myinfo-proxy check-config`) and serves it (with redis-server, against a real Redis).

Exit status 0 when every case passed; the last line is "chart: N passed, N failed, N skipped".
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

# Helm's library keeps a cache and config under $HOME: point them at a scratch directory, so a
# run leaves nothing behind and never reads a user's repositories.
SCRATCH = Path(tempfile.mkdtemp(prefix="myinfo-proxy-chart-tests-"))
for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
    os.environ[var] = str(SCRATCH / var.lower())
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True  # no __pycache__ left in the source tree

import helm_python as helm  # noqa: E402

# Importing a module registers its cases, in this order.
import cases_egress  # noqa: E402,F401
import cases_redis  # noqa: E402,F401
import cases_sidecar  # noqa: E402,F401
import cases_values  # noqa: E402,F401
import cases_runtime  # noqa: E402,F401
import cases_redis_runtime  # noqa: E402,F401
from harness import CASES, KUBE_VERSIONS, Skip  # noqa: E402


def main() -> int:
    passed = failed = skipped = 0
    print(f"myinfo-proxy chart tests (Helm SDK {helm.helm_sdk_version()}, "
          f"Kubernetes schemas {', '.join(KUBE_VERSIONS)})")
    for name, fn in CASES:
        try:
            fn()
        except Skip as s:
            skipped += 1
            print(f"SKIP  {name}: {s}")
        except Exception as e:  # noqa: BLE001 - report every failure, then run the next case
            failed += 1
            print(f"FAIL  {name}")
            detail = str(e) if isinstance(e, AssertionError) and str(e) else traceback.format_exc()
            print("      " + detail.strip().replace("\n", "\n      "))
        else:
            passed += 1
            print(f"ok    {name}")
    shutil.rmtree(SCRATCH, ignore_errors=True)
    print(f"chart: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
