"""Sidecar mode: the chart's ConfigMap, and the named templates through the example app chart."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import helm_python as helm
import yaml

from checks import (
    assert_checksums, assert_container_security, assert_grace, assert_keys_from_secret,
    assert_lint_clean, assert_no_key_material, assert_probes, proxy_container,
)
from harness import (
    AUTH, BASE, CHART, CHART_README, EXAMPLE, KEY_SECRET, ROOT, case, config_of, kinds, merge,
    one, render, validate_k8s,
)


@case("sidecar mode renders only the ConfigMap, listening on loopback, no [inbound]")
def _():
    # Egress-only options are ignored in sidecar mode: still only the ConfigMap.
    egress_only = {"serviceMonitor": {"enabled": True}, "autoscaling": {"enabled": True}, "sidecar": {"native": True}}
    for extra in ({}, egress_only):
        docs = render(merge(BASE, extra))
        validate_k8s(docs)
        assert kinds(docs) == ["ConfigMap"], kinds(docs)
        text, config = config_of(docs)
        assert_no_key_material(text)
        assert config["listen"] == "127.0.0.1:8080", config["listen"]
        assert "inbound" not in config
        assert config["keys"]["jwks_file"] == "/etc/myinfo-proxy/keys/private-jwks.json"
        assert config["drain_timeout"] == "20s"


def vendored_example(tmp: Path, app_values: dict | None = None, template: str | None = None) -> Path:
    """A copy of helm/examples/app with this chart in its charts/ (what `helm dependency
    update` puts there), optionally with other values or another pod template."""
    app = tmp / "app"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    shutil.copytree(CHART, app / "charts" / "myinfo-proxy")
    if app_values is not None:
        (app / "values.yaml").write_text(yaml.safe_dump(app_values))
    if template is not None:
        (app / "templates" / "deployment.yaml").write_text(template)
    return app


def check_sidecar_pod(docs, secret: str, release: str) -> tuple[dict, dict]:
    """The example app's pod: the proxy container beside the app, wired to the ConfigMap the
    dependency rendered. Returns (pod spec, proxy container)."""
    validate_k8s(docs)
    assert kinds(docs) == ["ConfigMap", "Deployment"], kinds(docs)
    configmap = one(docs, "ConfigMap")
    assert configmap["metadata"]["name"] == f"{release}-myinfo-proxy"
    text, config = config_of(docs)
    assert_no_key_material(text)
    assert config["listen"].startswith("127.0.0.1:"), "a sidecar must listen on loopback only"
    pod = one(docs, "Deployment")["spec"]["template"]
    spec = pod["spec"]
    c = proxy_container(spec["containers"] + spec.get("initContainers", []))
    assert_container_security(c)
    assert_probes(c, config)
    assert_grace(spec, c, config)
    assert_checksums(pod["metadata"], configmap)
    assert_keys_from_secret(spec, c, config, secret, configmap)
    assert spec["securityContext"].get("fsGroup") is not None, "the 0440 key file needs the pod's fsGroup"
    assert 8080 not in {p["containerPort"] for p in c.get("ports", [])}, "loopback port declared"
    return spec, c


@case("README example app (sidecar via a file:// dependency) renders and validates")
def _():
    with tempfile.TemporaryDirectory() as tmp:
        app = vendored_example(Path(tmp))
        values = yaml.safe_load((app / "values.yaml").read_text())
        docs = render({}, chart=app, release="shop")
        spec, c = check_sidecar_pod(docs, values["myinfo-proxy"]["keys"]["existingSecret"], "shop")
        assert [x["name"] for x in spec["containers"]] == ["app", "myinfo-proxy"]
        assert "restartPolicy" not in c
        app_env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
        assert all(v.startswith("http://127.0.0.1:8080/") for v in app_env.values()), app_env
        # The image tag comes from this chart's appVersion, not the app chart's.
        assert c["image"].endswith(":" + yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])


NATIVE_TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  selector:
    matchLabels: {app: native}
  template:
    metadata:
      labels: {app: native}
      annotations:
        {{- include "myinfo-proxy.sidecarPodAnnotations" . | nindent 8 }}
    spec:
      terminationGracePeriodSeconds: {{ include "myinfo-proxy.terminationGracePeriodSeconds" . }}
      securityContext:
        fsGroup: 65532
      initContainers:
        {{- include "myinfo-proxy.sidecar" . | nindent 8 }}
      containers:
        - name: app
          image: app:1
      volumes:
        {{- include "myinfo-proxy.sidecarVolumes" . | nindent 8 }}
"""


@case("native sidecar (sidecar.native) renders as an init container with restartPolicy Always")
def _():
    values = {"myinfo-proxy": merge(BASE, {"sidecar": {"native": True}, "ports": {"admin": 9191}})}
    with tempfile.TemporaryDirectory() as tmp:
        app = vendored_example(Path(tmp), values, NATIVE_TEMPLATE)
        docs = render({}, chart=app, release="native")
        spec, c = check_sidecar_pod(docs, KEY_SECRET, "native")
        assert spec["initContainers"][0] is c and c["restartPolicy"] == "Always"
        assert c["ports"] == [{"name": "myinfo-admin", "containerPort": 9191, "protocol": "TCP"}]


@case("the sidecar templates refuse an egress-mode dependency and missing keys")
def _():
    for bad, message in (
        (
            {"mode": "egress", "inbound": AUTH["api-key"], "networkPolicy": {"enabled": False}},
            "need myinfo-proxy.mode=sidecar",
        ),
        ({"keys": {"existingSecret": ""}}, None),
    ):
        values = {"myinfo-proxy": merge(BASE, bad)}
        with tempfile.TemporaryDirectory() as tmp:
            app = vendored_example(Path(tmp), values)
            try:
                render({}, chart=app, release="shop")
            except helm.HelmError as e:
                assert message is None or message in str(e), str(e)
            else:
                raise AssertionError(f"rendered with {bad}")


@case("`helm dependency update` of the example app works offline through file://")
def _():
    with tempfile.TemporaryDirectory() as tmp:
        # The same layout as the repository, so the committed relative file:// path resolves.
        shutil.copytree(CHART, Path(tmp) / "helm" / "myinfo-proxy")
        app = Path(tmp) / "helm" / "examples" / "app"
        shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
        helm.dependency_update(app)
        (dep,) = helm.dependency_list(app)
        assert dep["name"] == "myinfo-proxy" and dep["status"] == "ok", dep
        docs = render({}, chart=app, release="shop")
        check_sidecar_pod(docs, "example-app-myinfo-keys", "shop")
        report = helm.lint(app, strict=True, with_subcharts=True, kube_version="v1.30.0")
        assert_lint_clean(report)


@case("the chart README shows the example app's files verbatim")
def _():
    readme = CHART_README.read_text()
    # Blocks in the README introduced by a "# helm/examples/app/<file>" first line.
    blocks = re.findall(r"```yaml\n# (helm/examples/app/[^\n]+)\n(.*?)```", readme, re.S)
    shown = {path: body for path, body in blocks}
    for rel in ("Chart.yaml", "values.yaml", "templates/deployment.yaml"):
        path = f"helm/examples/app/{rel}"
        assert path in shown, f"README does not show {path}"
        actual = (ROOT / path).read_text()
        assert shown[path].strip() in actual, f"README's {path} differs from the file"
