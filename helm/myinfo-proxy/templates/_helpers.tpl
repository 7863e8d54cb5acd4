{{- /*
Names, labels and the image. These helpers take a "scope": anything with .Values (this chart's
values), .Release and .Chart (this chart's metadata). In this chart's own templates that is `.`;
when an app chart calls the sidecar templates, "myinfo-proxy.scope" builds it, so that the names
(the ConfigMap's above all) come out the same from both sides.
*/ -}}

{{- define "myinfo-proxy.name" -}}
{{- default "myinfo-proxy" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "myinfo-proxy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "myinfo-proxy.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "myinfo-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "myinfo-proxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "myinfo-proxy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "myinfo-proxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ .Values.mode }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "myinfo-proxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "myinfo-proxy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "myinfo-proxy.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- $tag := default .Chart.AppVersion $image.tag -}}
{{- if not $tag -}}
{{- fail "image.tag is empty and this Helm does not tell the chart's appVersion: set myinfo-proxy.image.tag" -}}
{{- end -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- /*
"myinfo-proxy.scope": fills the dict it is given, whose "root" is the caller's context, with
Values, Release and Chart of this chart. Called from this chart, they are the root's own; called
from an app chart that lists this chart as the dependency "myinfo-proxy", Values are
.Values.myinfo-proxy (already merged with this chart's defaults by Helm) and Chart is this
chart's metadata (for the image's default tag).
*/ -}}
{{- define "myinfo-proxy.scope" -}}
{{- $root := .root -}}
{{- if and (hasKey $root.Values "myinfo-proxy") (ne $root.Chart.Name "myinfo-proxy") -}}
{{- $_ := set . "Values" (index $root.Values "myinfo-proxy") -}}
{{- $sub := dict -}}
{{- if $root.Subcharts -}}
{{- $sub = index $root.Subcharts "myinfo-proxy" | default dict -}}
{{- end -}}
{{- /* .Subcharts is missing in old Helm 3 releases: the image then needs an explicit tag. */ -}}
{{- $_ := set . "Chart" ($sub.Chart | default (dict "Name" "myinfo-proxy" "AppVersion" "")) -}}
{{- else -}}
{{- $_ := set . "Values" $root.Values -}}
{{- $_ := set . "Chart" $root.Chart -}}
{{- end -}}
{{- $_ := set . "Release" $root.Release -}}
{{- end -}}

{{- /* The mounted paths; config.toml points at them. */ -}}
{{- define "myinfo-proxy.paths.config" -}}/etc/myinfo-proxy/config.toml{{- end -}}
{{- define "myinfo-proxy.paths.keysDir" -}}/etc/myinfo-proxy/keys{{- end -}}
{{- define "myinfo-proxy.paths.tlsDir" -}}/etc/myinfo-proxy/tls{{- end -}}
{{- define "myinfo-proxy.paths.extraCaDir" -}}/etc/myinfo-proxy/extra-ca{{- end -}}
{{- define "myinfo-proxy.paths.sealDir" -}}/etc/myinfo-proxy/seal{{- end -}}

{{- /* preStopSleepSeconds + drainTimeoutSeconds + 10, or the value given (validated). */ -}}
{{- define "myinfo-proxy.terminationGracePeriod" -}}
{{- $floor := add (int .Values.preStopSleepSeconds) (int .Values.config.drainTimeoutSeconds) -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $floor 10 -}}
{{- else if le (int .Values.terminationGracePeriodSeconds) $floor -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be larger than preStopSleepSeconds + config.drainTimeoutSeconds (%d), or the kubelet kills the proxy while requests are still draining" (int .Values.terminationGracePeriodSeconds) $floor) -}}
{{- else -}}
{{- int .Values.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{- /*
Checksums that roll the pods when the config or the Secrets' names change. The key Secret's
content is not hashed: the proxy re-reads the key file, so a rotation needs no restart. (The
Redis URL Secret is an env var and the seal keys are read at start: a change of their content
needs a restart, which the chart README describes.)
*/ -}}
{{- define "myinfo-proxy.checksumAnnotations" -}}
checksum/config: {{ include "myinfo-proxy.configFile" . | sha256sum }}
checksum/secrets: {{ printf "keys=%s/%s mtls=%s%s" .Values.keys.existingSecret .Values.keys.jwksKey (include "myinfo-proxy.mtlsSecret" .) (include "myinfo-proxy.redisSecrets" .) | sha256sum }}
{{- end -}}

{{- /* The Redis Secrets' names and keys, in egress mode with Redis only ("" otherwise). */ -}}
{{- define "myinfo-proxy.redisSecrets" -}}
{{- if include "myinfo-proxy.redisOn" . -}}
{{- $r := .Values.redis -}}
{{- printf " redis=%s/%s seal=%s/%s" $r.existingSecret (ternary $r.existingSecretKey "" (not (empty $r.existingSecret))) $r.sealKeys.existingSecret $r.sealKeys.key -}}
{{- end -}}
{{- end -}}

{{- /* The mTLS Secret's name, in egress mode only ("" otherwise). */ -}}
{{- define "myinfo-proxy.mtlsSecret" -}}
{{- if eq .Values.mode "egress" -}}{{ .Values.inbound.mtls.existingSecret }}{{- end -}}
{{- end -}}
