{{- /*
The proxy container and its volumes, shared by the egress Deployment and the sidecar templates.
Each takes a scope (see _helpers.tpl) and renders YAML list items.
*/ -}}

{{- define "myinfo-proxy.container" -}}
{{- $v := .Values -}}
{{- $egress := eq $v.mode "egress" -}}
- name: myinfo-proxy
  image: {{ include "myinfo-proxy.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if and (not $egress) $v.sidecar.native }}
  # A native sidecar (list it under initContainers): starts before the app, stops after it.
  restartPolicy: Always
  {{- end }}
  args: ["serve", "--config", {{ include "myinfo-proxy.paths.config" . | quote }}]
  env:
    - name: RUST_LOG
      value: {{ $v.config.log.level | quote }}
    {{- with include "myinfo-proxy.redisEnv" . }}
    # The Redis URL with its password: from the Secret, never in config.toml.
    {{- . | nindent 4 }}
    {{- end }}
    {{- with $v.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    {{- if $egress }}
    - name: myinfo-http
      containerPort: {{ $v.ports.http }}
      protocol: TCP
    {{- end }}
    {{- /* A sidecar's main port is loopback only, so it is not declared. */}}
    - name: myinfo-admin
      containerPort: {{ $v.ports.admin }}
      protocol: TCP
  livenessProbe:
    httpGet:
      path: /healthz
      port: myinfo-admin
    {{- toYaml $v.probes.liveness | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: myinfo-admin
    {{- toYaml $v.probes.readiness | nindent 4 }}
  {{- if gt (int $v.preStopSleepSeconds) 0 }}
  lifecycle:
    preStop:
      sleep:
        seconds: {{ int $v.preStopSleepSeconds }}
  {{- end }}
  resources:
    {{- toYaml $v.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - name: myinfo-proxy-config
      mountPath: {{ include "myinfo-proxy.paths.config" . }}
      # One file out of the ConfigMap. A config change rolls the pods (checksum/config), so
      # the subPath mount needing a restart to update does not matter here.
      subPath: config.toml
      readOnly: true
    - name: myinfo-proxy-keys
      # A directory, never subPath: Secret updates then reach the file, and the proxy
      # re-reads it every keys.reloadInterval.
      mountPath: {{ include "myinfo-proxy.paths.keysDir" . }}
      readOnly: true
    {{- if include "myinfo-proxy.mtlsSecret" . }}
    - name: myinfo-proxy-tls
      mountPath: {{ include "myinfo-proxy.paths.tlsDir" . }}
      readOnly: true
    {{- end }}
    {{- if $v.config.tls.extraCaConfigMap.name }}
    - name: myinfo-proxy-extra-ca
      mountPath: {{ include "myinfo-proxy.paths.extraCaDir" . }}
      readOnly: true
    {{- end }}
    {{- if include "myinfo-proxy.redisOn" . }}
    - name: myinfo-proxy-seal
      mountPath: {{ include "myinfo-proxy.paths.sealDir" . }}
      readOnly: true
    {{- end }}
{{- end -}}

{{- define "myinfo-proxy.podVolumes" -}}
{{- $v := .Values -}}
- name: myinfo-proxy-config
  configMap:
    name: {{ include "myinfo-proxy.fullname" . }}
- name: myinfo-proxy-keys
  secret:
    secretName: {{ $v.keys.existingSecret }}
    defaultMode: {{ int $v.keys.defaultMode }}
    items:
      - key: {{ $v.keys.jwksKey }}
        path: {{ $v.keys.jwksKey }}
{{- with include "myinfo-proxy.mtlsSecret" . }}
- name: myinfo-proxy-tls
  secret:
    secretName: {{ . }}
    defaultMode: {{ int $v.keys.defaultMode }}
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- with $v.config.tls.extraCaConfigMap }}
{{- if .name }}
- name: myinfo-proxy-extra-ca
  configMap:
    name: {{ .name }}
    items:
      - key: {{ .key | default "ca.crt" }}
        path: {{ .key | default "ca.crt" }}
{{- end }}
{{- end }}
{{- with include "myinfo-proxy.redisVolume" . }}
{{ . }}
{{- end }}
{{- end -}}
