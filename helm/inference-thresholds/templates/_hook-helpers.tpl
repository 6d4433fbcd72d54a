{{/* Helpers of the lifecycle hooks (prune, helm test). */}}

{{/* A label map as a selector string: "a=b,c=d" (keys sorted). */}}
{{- define "it.selectorString" -}}
{{- $pairs := list }}
{{- range $k, $v := . }}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/* The operator's /metrics as the `helm test` Pod reaches it: through the metrics Service;
     for a host-network operator (clusters without a pod network to Services) on its node,
     at its bind address, or loopback when it listens on all addresses (the test Pod then
     runs in the host network too, preferring the operator's node). "" when neither. */}}
{{- define "it.operator.metricsUrl" -}}
{{- $op := .Values.operator }}
{{- if $op.hostNetwork }}
{{- $host := $op.bindAddress }}
{{- if has $host (list "0.0.0.0" "::") }}{{ $host = "127.0.0.1" }}{{ end }}
{{- if contains ":" $host }}{{ $host = printf "[%s]" $host }}{{ end }}
{{- printf "http://%s:%v/metrics" $host $op.metrics.port }}
{{- else if $op.service.enabled }}
{{- printf "http://%s-metrics.%s.svc:%v/metrics" (include "it.operator.fullname" .) .Release.Namespace $op.service.port }}
{{- end }}
{{- end }}
