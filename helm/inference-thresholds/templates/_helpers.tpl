{{/* Names, labels and images shared by the templates. */}}

{{- define "it.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The object name prefix; components append "-operator" / "-node-agent" (so 52 max). */}}
{{- define "it.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "it.operator.fullname" -}}
{{- printf "%s-operator" (include "it.fullname" .) }}
{{- end }}

{{- define "it.agent.fullname" -}}
{{- printf "%s-node-agent" (include "it.fullname" .) }}
{{- end }}

{{- define "it.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "it.selectorLabels" -}}
app.kubernetes.io/name: {{ include "it.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "it.labels" -}}
helm.sh/chart: {{ include "it.chart" . }}
{{ include "it.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: inference-thresholds
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Component labels: call with (dict "ctx" $ "component" "operator"). */}}
{{- define "it.componentLabels" -}}
{{ include "it.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "it.componentSelectorLabels" -}}
{{ include "it.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "it.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "it.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "it.agent.serviceAccountName" -}}
{{- if .Values.agent.serviceAccount.create }}
{{- default (include "it.agent.fullname" .) .Values.agent.serviceAccount.name }}
{{- else }}
{{- required "agent.serviceAccount.name is required when agent.serviceAccount.create is false" .Values.agent.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag or repository@digest; call with (dict "image" .Values.x.image "ctx" $). */}}
{{- define "it.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{- define "it.policyConfigMapName" -}}
{{- printf "%s-policy" (include "it.operator.fullname" .) }}
{{- end }}

{{/* Where the operator reads its policy file (the ConfigMap is mounted as a directory, not
     with subPath, so edits reach the pod and the operator reloads them). */}}
{{- define "it.policyDir" -}}/etc/inference-thresholds/policy{{- end }}

{{/* KUBERNETES_SERVICE_HOST/PORT when apiServer.host is set (list items for `env:`). */}}
{{- define "it.apiServerEnv" -}}
{{- if .Values.apiServer.host }}
# The API server as these pods reach it (apiServer.*), instead of the kubernetes Service.
- name: KUBERNETES_SERVICE_HOST
  value: {{ .Values.apiServer.host | quote }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ .Values.apiServer.port | quote }}
{{- end }}
{{- end }}

{{/* Pod-level networking; call with a component's values (.Values.operator / .agent). */}}
{{- define "it.podNetwork" -}}
{{- if .hostNetwork }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
{{- end }}

{{/* An httpGet probe's host: the bind address when a host-network pod listens on one
     address only (the kubelet dials the pod IP, i.e. the node's, otherwise). */}}
{{- define "it.probeHost" -}}
{{- if and .hostNetwork (not (has .bindAddress (list "0.0.0.0" "::"))) }}
host: {{ .bindAddress | quote }}
{{- end }}
{{- end }}
