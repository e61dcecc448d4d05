{{/* Names, labels and the pieces every pod of the core shares. */}}

{{- define "dsx-connect.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dsx-connect.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "dsx-connect.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dsx-connect.labels" -}}
helm.sh/chart: {{ include "dsx-connect.chart" . }}
app.kubernetes.io/name: {{ include "dsx-connect.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dsx-connect
{{- end }}

{{/* selector labels of one component: include "dsx-connect.selectorLabels" (list $ "api") */}}
{{- define "dsx-connect.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "dsx-connect.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "dsx-connect.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "dsx-connect.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dsx-connect.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dsx-connect.secretName" -}}
{{- default (printf "%s-secrets" (include "dsx-connect.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "dsx-connect.apiServiceName" -}}
{{- default (printf "%s-api" (include "dsx-connect.fullname" .)) .Values.api.service.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dsx-connect.redisHost" -}}
{{- printf "%s-redis" (include "dsx-connect.fullname" .) }}
{{- end }}

{{- define "dsx-connect.scannerUrl" -}}
{{- if .Values.scanner.url }}
{{- .Values.scanner.url }}
{{- else if .Values.scanner.appliance.enabled }}
{{- printf "http://%s-dsxa-scanner:%v/scan/binary/v2" (include "dsx-connect.fullname" .) .Values.scanner.appliance.service.port }}
{{- else if .Values.scanner.embedded.enabled }}
{{- printf "http://%s-dsxa-lite:%v/scan/binary/v2" (include "dsx-connect.fullname" .) .Values.scanner.embedded.service.port }}
{{- else }}
{{- fail "scanner.url is empty and scanner.appliance.enabled and scanner.embedded.enabled are false: set scanner.url to your DSXA (https://dsxa.example.com/scan/binary/v2), enable the DSXA appliance, or enable the embedded dsxa_lite" }}
{{- end }}
{{- end }}

{{/* Environment of the API and the workers: ConfigMap, Redis, secrets (secretKeyRef only). */}}
{{- define "dsx-connect.env" -}}
{{- if .Values.redis.enabled }}
{{- if .Values.redis.auth.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "dsx-connect.secretName" . }}
      key: REDIS_PASSWORD
- name: DSXCONNECT_REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:%v/0" (include "dsx-connect.redisHost" .) .Values.redis.service.port | quote }}
{{- else }}
- name: DSXCONNECT_REDIS_URL
  value: {{ printf "redis://%s:%v/0" (include "dsx-connect.redisHost" .) .Values.redis.service.port | quote }}
{{- end }}
{{- else }}
- name: DSXCONNECT_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "dsx-connect.secretName" . }}
      key: DSXCONNECT_REDIS_URL
{{- end }}
{{- range .Values.secrets.keys }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ include "dsx-connect.secretName" $ }}
      key: {{ . }}
      {{- if not (and (eq . "DSXCONNECT_AUTH__SERVER_KEY") $.Values.auth.enabled) }}
      optional: true
      {{- end }}
{{- end }}
{{- include "dsx-connect.resultsDbEnv" . }}
{{- if .Values.tls.caSecretName }}
- name: DSXCONNECT_CONNECTORS__CA_BUNDLE
  value: {{ printf "/etc/dsx-connect/ca/%s" .Values.tls.caKey | quote }}
{{- end }}
{{- end }}

{{- define "dsx-connect.envFrom" -}}
- configMapRef:
    name: {{ include "dsx-connect.fullname" . }}-config
{{- end }}

{{- define "dsx-connect.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.tls.caSecretName }}
- name: connectors-ca
  mountPath: /etc/dsx-connect/ca
  readOnly: true
{{- end }}
{{- end }}

{{- define "dsx-connect.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if .Values.tls.caSecretName }}
- name: connectors-ca
  secret:
    secretName: {{ .Values.tls.caSecretName }}
{{- end }}
{{- end }}

{{/* rollout on a change of configuration or chart-made secrets */}}
{{- define "dsx-connect.checksums" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}

{{- define "dsx-connect.podCommon" -}}
serviceAccountName: {{ include "dsx-connect.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* an httpGet probe from values, over HTTPS when the API serves TLS */}}
{{- define "dsx-connect.httpProbe" -}}
{{- $probe := deepCopy (index . 1) -}}
{{- if (index . 0).Values.tls.enabled }}
{{- $_ := set $probe.httpGet "scheme" "HTTPS" }}
{{- end }}
{{- toYaml $probe }}
{{- end }}

{{/* DSXCONNECT_RESULTS_DB from a Secret (the URL may carry a password): resultsDb.existingSecret, else
the release's Secret (optional there: unset means redis). */}}
{{- define "dsx-connect.resultsDbEnv" -}}
{{- $db := .Values.resultsDb }}
{{- with $db.url }}
{{- if $db.existingSecret }}
{{- fail "resultsDb: give url or existingSecret, not both" }}
{{- end }}
{{- if not (regexMatch "^(redis|memory|rediss?://.+|(postgresql|postgres)(\\+psycopg)?://.+)$" .) }}
{{- fail (printf "resultsDb.url: expected redis, memory or postgresql://user:pass@host:5432/db (sqlite needs one filesystem shared by the API and the workers), got the scheme %q" (splitList ":" . | first)) }}
{{- end }}
{{- if $.Values.secrets.existingSecret }}
{{- fail "resultsDb.url: with secrets.existingSecret, put the URL in that Secret as DSXCONNECT_RESULTS_DB, or name its Secret in resultsDb.existingSecret" }}
{{- end }}
{{- end }}
- name: DSXCONNECT_RESULTS_DB
  valueFrom:
    secretKeyRef:
      {{- if $db.existingSecret }}
      name: {{ $db.existingSecret }}
      key: {{ required "resultsDb.existingSecretKey: the key of the URL in resultsDb.existingSecret" $db.existingSecretKey }}
      {{- else }}
      name: {{ include "dsx-connect.secretName" . }}
      key: DSXCONNECT_RESULTS_DB
      optional: {{ not $db.url }}
      {{- end }}
{{- end }}
