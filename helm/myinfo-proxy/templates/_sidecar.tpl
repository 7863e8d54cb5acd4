{{- /*
The sidecar API: named templates an app chart includes in its own pod template, after listing
this chart as a dependency (README.md, "Sidecar mode"). Each takes the app chart's root context
`.`; the values are .Values.myinfo-proxy.

  template:
    metadata:
      annotations:
        {{- include "myinfo-proxy.sidecarPodAnnotations" . | nindent 8 }}
    spec:
      terminationGracePeriodSeconds: {{ include "myinfo-proxy.terminationGracePeriodSeconds" . }}
      securityContext:
        fsGroup: 65532          # lets the proxy (uid 65532) read the mounted key file
      containers:
        - name: app
          ...
        {{- include "myinfo-proxy.sidecar" . | nindent 8 }}
      volumes:
        {{- include "myinfo-proxy.sidecarVolumes" . | nindent 8 }}
*/ -}}

{{- define "myinfo-proxy.sidecarScope" -}}
{{- include "myinfo-proxy.scope" . -}}
{{- if ne .Values.mode "sidecar" -}}
{{- fail "the myinfo-proxy sidecar templates need myinfo-proxy.mode=sidecar" -}}
{{- end -}}
{{- include "myinfo-proxy.validate" . -}}
{{- end -}}

{{- /* The proxy container: one item of `containers` (or of `initContainers` with sidecar.native). */ -}}
{{- define "myinfo-proxy.sidecar" -}}
{{- $s := dict "root" . -}}
{{- include "myinfo-proxy.sidecarScope" $s -}}
{{- include "myinfo-proxy.container" $s -}}
{{- end -}}

{{- /* The proxy's volumes: items of the pod's `volumes`. */ -}}
{{- define "myinfo-proxy.sidecarVolumes" -}}
{{- $s := dict "root" . -}}
{{- include "myinfo-proxy.sidecarScope" $s -}}
{{- include "myinfo-proxy.podVolumes" $s -}}
{{- end -}}

{{- /* Pod annotations (checksum/config, checksum/secrets) that roll the pod on a config change. */ -}}
{{- define "myinfo-proxy.sidecarPodAnnotations" -}}
{{- $s := dict "root" . -}}
{{- include "myinfo-proxy.sidecarScope" $s -}}
{{- include "myinfo-proxy.checksumAnnotations" $s -}}
{{- end -}}

{{- /*
The smallest terminationGracePeriodSeconds that lets the proxy drain: preStopSleepSeconds +
config.drainTimeoutSeconds + 10 (or the value set, once checked). Use a larger one if your app
needs longer to stop.
*/ -}}
{{- define "myinfo-proxy.terminationGracePeriodSeconds" -}}
{{- $s := dict "root" . -}}
{{- include "myinfo-proxy.sidecarScope" $s -}}
{{- include "myinfo-proxy.terminationGracePeriod" $s -}}
{{- end -}}
