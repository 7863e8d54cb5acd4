{{- /*
"myinfo-proxy.validate": refuses values that would give a proxy that cannot start, or an unsafe
one. values.schema.json says most of this too; these checks also hold with
--skip-schema-validation, and their messages say what to do. Takes a scope (see _helpers.tpl).
*/ -}}
{{- define "myinfo-proxy.validate" -}}
{{- $v := .Values -}}
{{- if not (has $v.mode (list "sidecar" "egress")) -}}
{{- fail (printf "mode must be \"sidecar\" or \"egress\", not %q" (toString $v.mode)) -}}
{{- end -}}
{{- if not $v.keys.existingSecret -}}
{{- fail "keys.existingSecret is required: the name of a Secret that holds the private JWKS (key keys.jwksKey, default private-jwks.json). Key material never goes in values." -}}
{{- end -}}
{{- if not $v.config.clientId -}}
{{- fail "config.clientId is required: your Singpass client id" -}}
{{- end -}}
{{- if not $v.config.upstreams -}}
{{- fail "config.upstreams needs at least one upstream" -}}
{{- end -}}
{{- range $i, $u := $v.config.upstreams -}}
{{- if and (eq $u.kind "myinfo-v4") (not $u.baseUrl) -}}
{{- fail (printf "config.upstreams[%d]: a myinfo-v4 upstream needs baseUrl" $i) -}}
{{- end -}}
{{- if and (has $u.kind (list "singpass-fapi" "singpass-ciba")) (not $u.issuer) -}}
{{- fail (printf "config.upstreams[%d]: a %s upstream needs issuer" $i $u.kind) -}}
{{- end -}}
{{- end -}}
{{- $_ := include "myinfo-proxy.terminationGracePeriod" . -}}
{{- include "myinfo-proxy.validateRedis" . -}}
{{- if eq $v.mode "egress" -}}
{{- include "myinfo-proxy.validateEgress" . -}}
{{- end -}}
{{- end -}}

{{- define "myinfo-proxy.validateEgress" -}}
{{- $v := .Values -}}
{{- $in := $v.inbound -}}
{{- if not (or $in.apiKeySha256 $in.mtls.existingSecret $in.allowUnauthenticated) -}}
{{- fail "egress mode listens on the pod network and needs inbound authentication: set inbound.apiKeySha256 (SHA-256 hex of API keys), or inbound.mtls.existingSecret (a Secret with tls.crt, tls.key, ca.crt), or, knowing that anyone who reaches the Service can then sign Singpass calls as your client, inbound.allowUnauthenticated=true" -}}
{{- end -}}
{{- range $i, $h := $in.apiKeySha256 -}}
{{- if not (regexMatch "^[0-9a-f]{64}$" (toString $h)) -}}
{{- fail (printf "inbound.apiKeySha256[%d] is not 64 lowercase hex digits: store the SHA-256 of each key, never the key (printf %%s \"$KEY\" | sha256sum)" $i) -}}
{{- end -}}
{{- end -}}
{{- if and $v.podDisruptionBudget.enabled (not (kindIs "invalid" $v.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" $v.podDisruptionBudget.maxUnavailable)) -}}
{{- fail "podDisruptionBudget: set maxUnavailable or minAvailable, not both (null the other)" -}}
{{- end -}}
{{- if $v.networkPolicy.enabled -}}
{{- if not $v.networkPolicy.ingressFrom -}}
{{- fail "networkPolicy.ingressFrom is empty: list the namespaces/pods of the apps that call the proxy (NetworkPolicyPeers), or set networkPolicy.enabled=false" -}}
{{- end -}}
{{- if not $v.networkPolicy.egressCIDRs -}}
{{- fail "networkPolicy.egressCIDRs is empty: the proxy could reach only DNS, not Singpass. List the Singpass hosts' address ranges (or [\"0.0.0.0/0\"] for any HTTPS destination), or set networkPolicy.enabled=false" -}}
{{- end -}}
{{- end -}}
{{- end -}}
