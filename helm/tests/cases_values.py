"""Values: refusals of bad values (schema and templates), the schema's closedness, Helm lint."""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path

import helm_python as helm

from cases_egress import egress_values
from checks import assert_lint_clean
from harness import BASE, CHART, REDIS, REDIS_URL_SECRET, SEAL_SECRET, case, merge, render


def render_without_schema(values: dict):
    """Render a copy of the chart without values.schema.json, as with --skip-schema-validation,
    to prove the templates' own checks."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / "myinfo-proxy"
        shutil.copytree(CHART, chart)
        (chart / "values.schema.json").unlink()
        return render(values, chart=chart)


def without(values: dict, *path: str) -> dict:
    out = copy.deepcopy(values)
    node = out
    for key in path[:-1]:
        node = node[key]
    node.pop(path[-1])
    return out


EGRESS_OK = egress_values("api-key", False, False, True)
REDIS_OK = merge(EGRESS_OK, {"redis": REDIS["url"]})
REDIS_SECRET_OK = merge(EGRESS_OK, {"redis": REDIS["secret"]})
BAD_VALUES = [
    # (name, values, refused by values.schema.json?, the templates' message or None where only
    # the schema can tell). Some rules (arithmetic, mutual exclusion with Helm's null handling)
    # are beyond JSON Schema and live in the templates only.
    ("egress without inbound auth", without(EGRESS_OK, "inbound", "apiKeySha256"), True, "needs inbound authentication"),
    ("missing keys.existingSecret", without(merge(BASE), "keys", "existingSecret"), True, "keys.existingSecret is required"),
    ("missing keys.existingSecret (egress)", without(EGRESS_OK, "keys", "existingSecret"), True, "keys.existingSecret is required"),
    ("missing config.clientId", without(merge(BASE), "config", "clientId"), True, "config.clientId is required"),
    ("a raw API key instead of its hash", merge(EGRESS_OK, {"inbound": {"apiKeySha256": ["my-secret-api-key"]}}), True, "not 64 lowercase hex digits"),
    ("egress NetworkPolicy without Singpass CIDRs", merge(EGRESS_OK, {"networkPolicy": {"egressCIDRs": []}}), True, "egressCIDRs is empty"),
    ("egress NetworkPolicy without app peers", merge(EGRESS_OK, {"networkPolicy": {"ingressFrom": []}}), True, "ingressFrom is empty"),
    ("v4 upstream without baseUrl", merge(BASE, {"config": {"upstreams": [{"kind": "myinfo-v4"}]}}), True, "needs baseUrl"),
    ("FAPI upstream without issuer", merge(BASE, {"config": {"upstreams": [{"kind": "singpass-fapi"}]}}), True, "needs issuer"),
    ("unknown mode", merge(BASE, {"mode": "gateway"}), True, "mode must be"),
    ("grace period not above preStop + drain", merge(BASE, {"terminationGracePeriodSeconds": 25}), False, "must be larger than"),
    ("PDB with both minAvailable and maxUnavailable", merge(EGRESS_OK, {"podDisruptionBudget": {"minAvailable": 1}}), False, "not both"),
    # No value can carry key material: the schema refuses any key it does not know.
    ("a private JWKS in values", merge(BASE, {"keys": {"privateJwks": '{"keys":[]}'}}), True, None),
    ("a PEM in values", merge(BASE, {"keys": {"sigPem": "-----BEGIN PRIVATE KEY-----"}}), True, None),
    ("a key env source in values", merge(BASE, {"config": {"keys": {"jwksEnv": "MYINFO_PROXY_JWKS"}}}), True, None),
    ("a typo in a value", merge(BASE, {"config": {"timeout": {"connect": "1s"}}}), True, None),
    ("a duration without a unit", merge(BASE, {"config": {"timeouts": {"connect": "3"}}}), True, None),
    # Redis: egress only, one URL source, never a password in values, seal keys required.
    ("redis values in sidecar mode", merge(BASE, {"mode": "sidecar", "redis": REDIS["url"]}), True, "redis.* is for egress mode"),
    ("redis Secret in sidecar mode", merge(BASE, {"mode": "sidecar", "redis": REDIS["secret"]}), True, "redis.* is for egress mode"),
    ("redis on without seal keys", merge(EGRESS_OK, {"redis": {"url": REDIS["url"]["url"]}}), True, "redis.sealKeys.existingSecret is required"),
    ("redis Secret without seal keys", merge(EGRESS_OK, {"redis": {"existingSecret": REDIS_URL_SECRET}}), True, "redis.sealKeys.existingSecret is required"),
    ("both redis.url and redis.existingSecret", merge(REDIS_OK, {"redis": {"existingSecret": REDIS_URL_SECRET}}), True, "not both"),
    ("a redis URL with a password in values", merge(REDIS_OK, {"redis": {"url": "redis://:hunter2@redis:6379"}}), True, "carries a password"),
    ("a redis URL with user and password in values", merge(REDIS_OK, {"redis": {"url": "rediss://default:hunter2@redis:6379/0"}}), True, "carries a password"),
    ("a redis URL that is not redis://", merge(REDIS_OK, {"redis": {"url": "http://redis:6379"}}), True, "not a redis:// or rediss:// URL"),
    ("seal keys without Redis", merge(EGRESS_OK, {"redis": {"sealKeys": {"existingSecret": SEAL_SECRET}}}), True, "is set but Redis is not"),
    ("redis.fallbackReplicas 0", merge(REDIS_OK, {"redis": {"fallbackReplicas": 0}}), True, "at least 1"),
    ("a redis.url port the NetworkPolicy blocks", merge(REDIS_OK, {"redis": {"url": "rediss://cache.example:6380"}}), False, "does not allow"),
    ("a redis key prefix with a space", merge(REDIS_OK, {"redis": {"keyPrefix": "my prefix"}}), True, None),
    ("a redis password in values", merge(REDIS_OK, {"redis": {"password": "hunter2"}}), True, None),
    ("a seal key in values", merge(REDIS_OK, {"redis": {"sealKeys": {"keys": "c2VhbA"}}}), True, None),
]


for _name, _values, _in_schema, _message in BAD_VALUES:

    def _bad_case(values=_values, in_schema=_in_schema, message=_message):
        with helm.Chart.load(CHART) as chart:
            if in_schema:
                try:
                    chart.validate_schema(values)
                except helm.HelmValuesError:
                    pass
                else:
                    raise AssertionError("values.schema.json accepted it")
            else:
                # Then the normal render path (schema first) must still refuse it.
                try:
                    chart.render(values, name="rel")
                except helm.HelmRenderError as e:
                    assert message in str(e), str(e)
                else:
                    raise AssertionError("rendered")
        if message is None:
            return
        try:
            render_without_schema(values)
        except helm.HelmRenderError as e:
            assert message in str(e), f"template failed, but not with {message!r}: {e}"
        else:
            raise AssertionError("the templates rendered it without the schema")

    case(f"refused: {_name}")(_bad_case)


@case("the values the tests use as good are accepted by the schema and templates alike")
def _():
    # Guards the refusal tests above: each bad case differs from an accepted one.
    for values in (merge(BASE), EGRESS_OK, REDIS_OK, REDIS_SECRET_OK):
        with helm.Chart.load(CHART) as chart:
            chart.validate_schema(values)
        render_without_schema(values)


@case("values.schema.json: no free-form object where key material could hide")
def _():
    schema = json.loads((CHART / "values.schema.json").read_text())
    defs = schema["definitions"]
    # Kubernetes pass-through objects, checked by the Kubernetes schemas instead; none of them
    # reaches config.toml or a Secret volume.
    passthrough = {
        "global", "resources", "securityContext", "podSecurityContext", "affinity",
        "extraEnv[]", "tolerations[]", "topologySpreadConstraints[]", "imagePullSecrets[]",
        "networkPolicy.ingressFrom[]", "networkPolicy.metricsFrom[]", "networkPolicy.dnsTo[]",
        "networkPolicy.extraEgress[]", "redis.networkPolicy.to[]",
    }
    open_objects = []

    def walk(node, path, closed_by_parent=False):
        if "$ref" in node:
            return walk(defs[node["$ref"].rsplit("/", 1)[1]], path, closed_by_parent)
        if path in passthrough:
            return
        if (node.get("type") == "object" or "properties" in node) and not closed_by_parent:
            extra = node.get("additionalProperties", True)
            if extra is True:
                open_objects.append(path or "(top)")
            elif isinstance(extra, dict):
                walk(extra, f"{path}.*")
        # allOf members describe the same object, which its own additionalProperties closes.
        for sub in node.get("allOf", []):
            walk(sub, path, closed_by_parent=True)
        for key, sub in node.get("properties", {}).items():
            if isinstance(sub, dict):
                walk(sub, f"{path}.{key}" if path else key)
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(schema, "")
    assert not open_objects, f"objects that accept unknown keys: {open_objects}"


# ---- lint ------------------------------------------------------------------------------------------


@case("helm lint --strict (sidecar, egress and egress with Redis values, Kubernetes 1.30)")
def _():
    for values in (merge(BASE), egress_values("mtls", True, True, True), REDIS_SECRET_OK):
        assert_lint_clean(helm.lint(CHART, values, strict=True, kube_version="v1.30.0"))


@case("helm lint reports the missing required values of a bare install")
def _():
    report = helm.lint(CHART, None, strict=True, kube_version="v1.30.0")
    text = " ".join(report["errors"])
    assert "existingSecret" in text and "clientId" in text, report
