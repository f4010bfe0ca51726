{{- define "keysync-app.labels" -}}
app.kubernetes.io/name: {{ .Values.app.name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/* What the keysync library needs to know of this workload (see charts/keysync), as YAML;
templates add the root context: include "keysync-app.keysync" . | fromYaml | merge (dict "ctx" $). */}}
{{- define "keysync-app.keysync" -}}
name: {{ .Values.app.name }}
selector: app.kubernetes.io/name={{ .Values.app.name }},app.kubernetes.io/instance={{ .Release.Name }}
labels: {{ include "keysync-app.labels" . | toYaml }}
serviceAccountName: {{ .Values.app.serviceAccountName | quote }}
podSecurityContext: {{- toYaml .Values.app.podSecurityContext | nindent 2 }}
{{- end }}
