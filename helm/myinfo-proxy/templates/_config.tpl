{{- /*
"myinfo-proxy.configToml": the proxy's config.toml, built from .Values.config and the chart's own
choices (listeners, key and TLS paths, inbound authentication). Strings go through toJson,
whose escapes are all valid in TOML basic strings. Takes a scope (see _helpers.tpl).
*/ -}}
{{- define "myinfo-proxy.configToml" -}}
{{- $v := .Values -}}
{{- $c := $v.config -}}
{{- $egress := eq $v.mode "egress" -}}
# Rendered by the myinfo-proxy Helm chart ({{ $v.mode }} mode); edit the chart values, not this file.
# Key material is never here, only the path of the mounted Secret.
{{- if $egress }}
listen = {{ include "myinfo-proxy.hostPort" (list $v.ports.address $v.ports.http) | toJson }}
{{- else }}
# Sidecar: only containers of the same pod can reach the proxy.
listen = {{ printf "127.0.0.1:%d" (int $v.ports.http) | toJson }}
{{- end }}
client_id = {{ $c.clientId | toJson }}
max_request_body = {{ int64 $c.maxRequestBody }}
max_response_body = {{ int64 $c.maxResponseBody }}
assertion_lifetime = {{ $c.assertionLifetime | toJson }}
drain_timeout = {{ printf "%ds" (int $c.drainTimeoutSeconds) | toJson }}
{{- with $c.problemDocUrl }}
problem_doc_url = {{ . | toJson }}
{{- end }}

# Probes and Prometheus reach the admin listener through the pod IP. It serves only health,
# metrics and the PUBLIC JWKS.
[admin]
enabled = true
listen = {{ include "myinfo-proxy.hostPort" (list $v.ports.address $v.ports.admin) | toJson }}
jwks_on_main_listener = {{ $c.jwksOnMainListener }}

[log]
format = {{ $c.log.format | toJson }}

[keys]
jwks_file = {{ printf "%s/%s" (include "myinfo-proxy.paths.keysDir" .) $v.keys.jwksKey | toJson }}
reload_interval = {{ $v.keys.reloadInterval | toJson }}
{{- with $v.keys.activeSigKid }}
active_sig_kid = {{ . | toJson }}
{{- end }}
{{- if $egress }}
{{- $in := $v.inbound }}

[inbound]
allow_unauthenticated = {{ $in.allowUnauthenticated }}
{{- with $in.apiKeySha256 }}
# SHA-256 of the API keys apps send in X-Api-Key (never the keys).
api_key_sha256 = {{ toJson . }}
{{- end }}
{{- if $in.mtls.existingSecret }}
{{- $dir := include "myinfo-proxy.paths.tlsDir" . }}
# TLS on the main listener; client certificates must chain to ca.crt (mTLS).
tls_cert_file = {{ printf "%s/tls.crt" $dir | toJson }}
tls_key_file = {{ printf "%s/tls.key" $dir | toJson }}
client_ca_file = {{ printf "%s/ca.crt" $dir | toJson }}
{{- end }}
{{- end }}
{{- include "myinfo-proxy.redisToml" . }}

[timeouts]
{{ include "myinfo-proxy.tomlPairs" $c.timeouts }}

[retry]
{{ include "myinfo-proxy.tomlPairs" $c.retry }}

[rate_limit]
{{ include "myinfo-proxy.tomlPairs" $c.rateLimit }}
{{- with $c.rateLimit.global }}
{{- if and .perSecond .burst }}

[rate_limit.global]
{{ include "myinfo-proxy.tomlPairs" . }}
{{- end }}
{{- end }}

[breaker]
{{ include "myinfo-proxy.tomlPairs" $c.breaker }}

[listener.main]
{{ include "myinfo-proxy.tomlPairs" $c.listener.main }}

[listener.admin]
{{ include "myinfo-proxy.tomlPairs" $c.listener.admin }}

[tls]
roots = {{ $c.tls.roots | toJson }}
{{- with $c.tls.extraCaConfigMap }}
{{- if .name }}
extra_ca_file = {{ printf "%s/%s" (include "myinfo-proxy.paths.extraCaDir" $) (.key | default "ca.crt") | toJson }}
{{- end }}
{{- end }}
{{- range $c.upstreams }}

[[upstream]]
{{ include "myinfo-proxy.tomlPairs" (omit . "routes") }}
{{- range $route, $r := .routes }}

[upstream.routes.{{ $route }}]
{{- with (omit $r "retry" "rateLimit" "timeouts") }}
{{ include "myinfo-proxy.tomlPairs" . }}
{{- end }}
{{- with $r.retry }}

[upstream.routes.{{ $route }}.retry]
{{ include "myinfo-proxy.tomlPairs" . }}
{{- end }}
{{- with $r.rateLimit }}

[upstream.routes.{{ $route }}.rate_limit]
{{ include "myinfo-proxy.tomlPairs" . }}
{{- end }}
{{- with $r.timeouts }}

[upstream.routes.{{ $route }}.timeouts]
{{ include "myinfo-proxy.tomlPairs" . }}
{{- end }}
{{- end }}
{{- end }}
{{ end -}}

{{- /*
"myinfo-proxy.configFile": config.toml exactly as the ConfigMap holds it (and as checksum/config
hashes it): no trailing blanks, so that kubectl shows it as a block, and one final newline.
*/ -}}
{{- define "myinfo-proxy.configFile" -}}
{{- regexReplaceAll "(?m)[ \t]+$" (include "myinfo-proxy.configToml" . | trim) "" -}}
{{- "\n" -}}
{{- end -}}

{{- /*
"myinfo-proxy.tomlPairs": the scalar and list members of a map as `snake_case = value` lines,
sorted by key; nested maps (sub-tables) and nulls are skipped. Keys are camelCase in values.
*/ -}}
{{- define "myinfo-proxy.tomlPairs" -}}
{{- $lines := list -}}
{{- range $k, $val := . -}}
{{- if not (or (kindIs "map" $val) (kindIs "invalid" $val)) -}}
{{- $lines = append $lines (printf "%s = %s" (snakecase $k) (toJson $val)) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $lines -}}
{{- end -}}

{{- /* "host:port", with brackets around an IPv6 host. Takes (list host port). */ -}}
{{- define "myinfo-proxy.hostPort" -}}
{{- $host := index . 0 | toString -}}
{{- if contains ":" $host -}}
{{- printf "[%s]:%d" $host (int (index . 1)) -}}
{{- else -}}
{{- printf "%s:%d" $host (int (index . 1)) -}}
{{- end -}}
{{- end -}}
