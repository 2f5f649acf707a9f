{{/*
Labels on every object and pod template: the two the kustomize base adds,
plus Helm's release labels. Selectors never carry the release labels (a
Deployment's selector is immutable).
*/}}
{{- define "flinkgate.labels" -}}
app.kubernetes.io/name: flinkgate
app.kubernetes.io/part-of: flinkgate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}
