{{- define "cfaccess.name" -}}cfaccess{{- end -}}

{{- define "cfaccess.fullname" -}}
{{- if contains "cfaccess" .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-cfaccess" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "cfaccess.labels" -}}
app.kubernetes.io/name: cfaccess
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "cfaccess.selector" -}}
app.kubernetes.io/name: cfaccess
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cfaccess.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if eq $tag "latest" }}{{ fail "image.tag: pin a version (or image.digest), never latest" }}{{ end -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}
