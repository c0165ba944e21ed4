{{/* The name of every object: the release name, or release-chart. */}}
{{- define "switchyard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the pods. They never change across upgrades. */}}
{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "switchyard.labels" -}}
{{ include "switchyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The port of a host:port address. */}}
{{- define "switchyard.port" -}}
{{- splitList ":" . | last -}}
{{- end -}}

{{/*
The ports Switchyard listens on, from its configuration, as a YAML list of
{name, port, client}. Port names are at most 15 characters: the group's
name cut to 11, then -tls or -ro.
*/}}
{{- define "switchyard.ports" -}}
{{- range .Values.config.groups }}
{{- $n := .name | lower | trunc 11 | trimSuffix "-" }}
{{- with dig "listen" "" . }}
- {name: {{ $n }}, port: {{ include "switchyard.port" . }}, client: true}
{{- end }}
{{- with dig "tls" "listen" "" . }}
- {name: {{ $n }}-tls, port: {{ include "switchyard.port" . }}, client: true}
{{- end }}
{{- with dig "read_listen" "" . }}
- {name: {{ $n }}-ro, port: {{ include "switchyard.port" . }}, client: true}
{{- end }}
{{- end }}
{{- with dig "sentinel_facade" "listen" "" .Values.config }}
- {name: sentinel, port: {{ include "switchyard.port" . }}, client: true}
{{- end }}
{{- with dig "sentinel_facade" "tls" "listen" "" .Values.config }}
- {name: sentinel-tls, port: {{ include "switchyard.port" . }}, client: true}
{{- end }}
- {name: admin, port: {{ include "switchyard.port" (required "config.admin_listen is required: the probes and the ServiceMonitor use it" .Values.config.admin_listen) }}, client: false}
{{- end -}}
