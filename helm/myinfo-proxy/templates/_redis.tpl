{{- /*
Shared state in an existing Redis (or Valkey) for several egress replicas: whether it is on, the
[redis] table of config.toml, the env var and Secret volume it needs, the replicas count the
fallback limiter divides by, and the checks. Each takes a scope (see _helpers.tpl).
*/ -}}

{{- /* "true" when the egress proxy shares its state in Redis, "" otherwise. */ -}}
{{- define "myinfo-proxy.redisOn" -}}
{{- if and (eq .Values.mode "egress") (or .Values.redis.url .Values.redis.existingSecret) -}}true{{- end -}}
{{- end -}}

{{- /* The env var that carries a URL with a password (from redis.existingSecret). */ -}}
{{- define "myinfo-proxy.redisUrlEnv" -}}MYINFO_PROXY_REDIS_URL{{- end -}}

{{- /*
fallback_replicas: redis.fallbackReplicas, or the most replicas that can run at once: the HPA's
maxReplicas (or replicaCount), plus the one extra pod a rollout starts (maxSurge: 1). While Redis
is unreachable each replica keeps to per_second / fallback_replicas, so a count too low would let
all of them together exceed the quota; one too high only makes the fallback more cautious.
*/ -}}
{{- define "myinfo-proxy.fallbackReplicas" -}}
{{- $v := .Values -}}
{{- if not (kindIs "invalid" $v.redis.fallbackReplicas) -}}
{{- int $v.redis.fallbackReplicas -}}
{{- else -}}
{{- add (include "myinfo-proxy.mostReplicas" . | int) 1 -}}
{{- end -}}
{{- end -}}

{{- /* The most replicas the Deployment is asked to run: maxReplicas with the HPA, else replicaCount. */ -}}
{{- define "myinfo-proxy.mostReplicas" -}}
{{- if .Values.autoscaling.enabled -}}
{{- int .Values.autoscaling.maxReplicas -}}
{{- else -}}
{{- int .Values.replicaCount -}}
{{- end -}}
{{- end -}}

{{- /*
The Service's sessionAffinity: the value set, or ClientIP without Redis (bindings live in one
replica's memory) and None with it (every replica finds every binding).
*/ -}}
{{- define "myinfo-proxy.sessionAffinity" -}}
{{- if .Values.service.sessionAffinity -}}
{{- .Values.service.sessionAffinity -}}
{{- else if include "myinfo-proxy.redisOn" . -}}
None
{{- else -}}
ClientIP
{{- end -}}
{{- end -}}

{{- /* The port a redis.url names, or "" when it names none (the client then uses 6379). */ -}}
{{- define "myinfo-proxy.redisUrlPort" -}}
{{- regexReplaceAll "^rediss?://(?:[^/@]*@)?(?:\\[[^\\]]*\\]|[^/:?#]*)(?::([0-9]+))?.*$" (toString .Values.redis.url) "${1}" -}}
{{- end -}}

{{- /* The [redis] table of config.toml (nothing without Redis). No password, no key here. */ -}}
{{- define "myinfo-proxy.redisToml" -}}
{{- if include "myinfo-proxy.redisOn" . -}}
{{- $r := .Values.redis }}

# State shared by every replica (the proxy README's "Several replicas").
[redis]
{{- if $r.url }}
url = {{ $r.url | toJson }}
{{- else }}
# The URL (with its password) comes from the Secret {{ $r.existingSecret }}, as an env var.
url_env = {{ include "myinfo-proxy.redisUrlEnv" . | toJson }}
{{- end }}
key_prefix = {{ $r.keyPrefix | toJson }}
timeout = {{ $r.timeout | toJson }}
fallback_replicas = {{ include "myinfo-proxy.fallbackReplicas" . }}
seal_keys_file = {{ printf "%s/%s" (include "myinfo-proxy.paths.sealDir" .) $r.sealKeys.key | toJson }}
{{- end -}}
{{- end -}}

{{- /* The container's env entry for a URL from a Secret (nothing otherwise). */ -}}
{{- define "myinfo-proxy.redisEnv" -}}
{{- if and (include "myinfo-proxy.redisOn" .) .Values.redis.existingSecret -}}
- name: {{ include "myinfo-proxy.redisUrlEnv" . }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.existingSecretKey }}
{{- end -}}
{{- end -}}

{{- /* The seal-key Secret volume (nothing without Redis). */ -}}
{{- define "myinfo-proxy.redisVolume" -}}
{{- if include "myinfo-proxy.redisOn" . -}}
{{- $s := .Values.redis.sealKeys -}}
- name: myinfo-proxy-seal
  secret:
    secretName: {{ $s.existingSecret }}
    defaultMode: {{ int .Values.keys.defaultMode }}
    items:
      - key: {{ $s.key }}
        path: {{ $s.key }}
{{- end -}}
{{- end -}}

{{- /*
Refuses Redis values that would not work: in sidecar mode (where the chart would otherwise ignore
them), a URL with a password in values, both or neither URL source, no seal keys, and a
NetworkPolicy that would block the port redis.url names.
*/ -}}
{{- define "myinfo-proxy.validateRedis" -}}
{{- $v := .Values -}}
{{- $r := $v.redis -}}
{{- if ne $v.mode "egress" -}}
{{- if or $r.url $r.existingSecret $r.sealKeys.existingSecret -}}
{{- fail "redis.* is for egress mode: a sidecar serves only its own pod and keeps its key bindings in memory, so it needs no Redis. Remove the redis values (or use mode=egress)" -}}
{{- end -}}
{{- else if or $r.url $r.existingSecret -}}
{{- if and $r.url $r.existingSecret -}}
{{- fail "set one of redis.url (a URL without a password) and redis.existingSecret (a Secret holding a URL with its password), not both" -}}
{{- end -}}
{{- if $r.url -}}
{{- if not (regexMatch "^rediss?://[^\\s]+$" $r.url) -}}
{{- fail (printf "redis.url %q is not a redis:// or rediss:// URL" $r.url) -}}
{{- end -}}
{{- if regexMatch "^rediss?://[^/@]*:[^/@]*@" $r.url -}}
{{- fail "redis.url carries a password, and values and config.toml hold no secrets: put the whole URL in a Secret and set redis.existingSecret (and redis.existingSecretKey)" -}}
{{- end -}}
{{- end -}}
{{- if not $r.sealKeys.existingSecret -}}
{{- fail "redis.sealKeys.existingSecret is required with Redis: the ephemeral keys are stored there sealed with these keys. Make one with `myinfo-proxy seal-key > seal-keys; kubectl create secret generic myinfo-proxy-seal --from-file=seal-keys=seal-keys`" -}}
{{- end -}}
{{- if and (not (kindIs "invalid" $r.fallbackReplicas)) (lt (int $r.fallbackReplicas) 1) -}}
{{- fail "redis.fallbackReplicas must be at least 1 (or empty for the chart's count)" -}}
{{- end -}}
{{- $port := include "myinfo-proxy.redisUrlPort" . | default "6379" | int -}}
{{- if $v.networkPolicy.enabled -}}
{{- $allowed := list -}}
{{- range $r.networkPolicy.ports }}{{ $allowed = append $allowed (int .) }}{{ end -}}
{{- if and $r.url (not (has $port $allowed)) -}}
{{- fail (printf "redis.url names port %d, which redis.networkPolicy.ports %v does not allow: add it, or the NetworkPolicy blocks Redis" $port $allowed) -}}
{{- end -}}
{{- end -}}
{{- else if $r.sealKeys.existingSecret -}}
{{- fail "redis.sealKeys.existingSecret is set but Redis is not: set redis.url or redis.existingSecret too, or remove the seal keys" -}}
{{- end -}}
{{- end -}}
