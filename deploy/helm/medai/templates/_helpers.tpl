{{/* Names, labels and the pieces every medai pod shares (serve, workers, dicom, migration). */}}

{{- define "medai.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "medai.fullname" -}}
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

{{- define "medai.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* labels; call with (dict "ctx" $ "component" "serve") */}}
{{- define "medai.labels" -}}
helm.sh/chart: {{ include "medai.chart" .ctx }}
{{ include "medai.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: medai
{{- end }}

{{- define "medai.selectorLabels" -}}
app.kubernetes.io/name: {{ include "medai.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* the image; call with (dict "ctx" $ "override" $pool.image) (override may be empty) */}}
{{- define "medai.image" -}}
{{- $o := .override | default dict }}
{{- $repo := $o.repository | default .ctx.Values.image.repository }}
{{- $tag := $o.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}

{{/* a worker pool's image; call with (dict "ctx" $ "pool" $w): the pool's own image when it
names a repository, else gpuImage (the CUDA build) for a pool that asks for GPUs, else image */}}
{{- define "medai.workerImage" -}}
{{- $o := .pool.image | default dict }}
{{- if and .pool.gpus (not $o.repository) }}
{{- $o = dict "repository" .ctx.Values.gpuImage.repository "tag" ($o.tag | default .ctx.Values.gpuImage.tag) }}
{{- end }}
{{- include "medai.image" (dict "ctx" .ctx "override" $o) }}
{{- end }}

{{- define "medai.claimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-home" (include "medai.fullname" .)) }}
{{- end }}

{{- define "medai.configName" -}}
{{- printf "%s-config" (include "medai.fullname" .) }}
{{- end }}

{{/* the Host headers served: localhost, the Service's names, the Ingress host, the site's */}}
{{- define "medai.trustedHosts" -}}
{{- $svc := printf "%s-serve" (include "medai.fullname" .) }}
{{- $hosts := list "localhost" "127.0.0.1" $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) }}
{{- if .Values.ingress.enabled }}
{{- $hosts = append $hosts .Values.ingress.host }}
{{- end }}
{{- concat $hosts .Values.config.trustedHosts | uniq | toJson }}
{{- end }}

{{/* pod-level security: non-root 10001, RuntimeDefault seccomp */}}
{{- define "medai.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "medai.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* the secrets the site provides, as one projected volume of files (mode 0440, group fsGroup) */}}
{{- define "medai.secretSources" -}}
{{- $v := .Values }}
{{- range $item := list (list $v.database "database-url") (list $v.broker "broker-url") (list $v.secretKeys "secret-keys") (list $v.llmApiKey "llm-api-key") (list $v.destinations "destinations.yaml") }}
{{- $ref := index $item 0 }}
{{- if $ref.existingSecret }}
- secret:
    name: {{ $ref.existingSecret }}
    items:
      - key: {{ $ref.key }}
        path: {{ index $item 1 }}
{{- end }}
{{- end }}
{{- end }}

{{- define "medai.secretEnv" -}}
{{- if .Values.database.existingSecret }}
- name: MEDAI_DATABASE_URL_FILE
  value: /run/secrets/medai/database-url
{{- end }}
{{- if .Values.broker.existingSecret }}
- name: MEDAI_BROKER_URL_FILE
  value: /run/secrets/medai/broker-url
{{- end }}
{{- if .Values.secretKeys.existingSecret }}
- name: MEDAI_SECRET_KEYS_FILE
  value: /run/secrets/medai/secret-keys
{{- end }}
{{- if .Values.llmApiKey.existingSecret }}
- name: MEDAI_LLM_API_KEY_FILE
  value: /run/secrets/medai/llm-api-key
{{- end }}
{{- if .Values.destinations.existingSecret }}
- name: MEDAI_DESTINATIONS_FILE
  value: /run/secrets/medai/destinations.yaml
{{- end }}
{{- end }}

{{/* volumes every long-running pod mounts: MEDAI_HOME, /tmp, the secrets */}}
{{- define "medai.volumes" -}}
- name: home
  persistentVolumeClaim:
    claimName: {{ include "medai.claimName" . }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- with include "medai.secretSources" . }}
- name: secrets
  projected:
    defaultMode: 0440
    sources:
{{- . | trim | nindent 6 }}
{{- end }}
{{- end }}

{{- define "medai.volumeMounts" -}}
- name: home
  mountPath: /var/lib/medai
- name: tmp
  mountPath: /tmp
{{- if include "medai.secretSources" . }}
- name: secrets
  mountPath: /run/secrets/medai
  readOnly: true
{{- end }}
{{- end }}

{{/* environment shared by serve, workers and dicom: the ConfigMap, the secrets' files */}}
{{- define "medai.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "medai.configName" . }}
env:
{{- include "medai.secretEnv" . | trim | nindent 2 }}
{{- end }}

{{- define "medai.podCommon" -}}
automountServiceAccountToken: false
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
securityContext:
{{- include "medai.podSecurityContext" . | nindent 2 }}
{{- end }}

{{/* the checks a render must pass before anything is applied */}}
{{- define "medai.validate" -}}
{{- $consumed := list }}
{{- range $name, $pool := .Values.workerPools }}
{{- if $pool.enabled }}
{{- $consumed = concat $consumed $pool.queues }}
{{- end }}
{{- end }}
{{- range $q := list "cpu" "training" }}
{{- if not (has $q $consumed) }}
{{- fail (printf "no enabled worker pool consumes the %q queue: its jobs would wait forever (workerPools.*.queues)" $q) }}
{{- end }}
{{- end }}
{{- if not .Values.broker.existingSecret }}
{{- fail "broker.existingSecret is required: the workers take studies from the site's Redis or RabbitMQ" }}
{{- end }}
{{- if not .Values.secretKeys.existingSecret }}
{{- fail "secretKeys.existingSecret is required: otherwise each pod would make its own key in the shared MEDAI_HOME" }}
{{- end }}
{{- if not .Values.database.existingSecret }}
{{- fail "database.existingSecret is required: every pod shares the site's PostgreSQL (SQLite cannot be shared between pods)" }}
{{- end }}
{{- end }}
