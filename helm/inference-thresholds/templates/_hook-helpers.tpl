{{/* Helpers of the lifecycle hooks (prune, helm test). */}}

{{/* A label map as a selector string: "a=b,c=d" (keys sorted). */}}
{{- define "it.selectorString" -}}
{{- $pairs := list }}
{{- range $k, $v := . }}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}
