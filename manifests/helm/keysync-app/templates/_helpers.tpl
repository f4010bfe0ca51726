{{- define "keysync-app.labels" -}}
app.kubernetes.io/name: {{ .Values.app.name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{- define "keysync.store" -}}
{{- default (printf "k8s://%s/%s" .Release.Namespace .Values.keysync.secretName) .Values.keysync.store -}}
{{- end }}

{{/* The fleet the rotation waits for: the release's own pods, by its own selector. */}}
{{- define "keysync.fleet" -}}
{{- default (printf "k8s://%s?selector=app.kubernetes.io/name=%s,app.kubernetes.io/instance=%s&port=%v" .Release.Namespace .Values.app.name .Release.Name .Values.keysync.port) .Values.keysync.rotation.fleet -}}
{{- end }}

{{/* The sidecar's build: the flavor value, or with auto the slim build of the store's scheme. */}}
{{- define "keysync.flavor" -}}
{{- $f := .Values.keysync.flavor | default "auto" -}}
{{- if eq $f "auto" -}}
{{- $store := include "keysync.store" . -}}
{{- $scheme := "file" -}}
{{- if contains "://" $store -}}{{- $scheme = first (splitList "://" $store) -}}{{- end -}}
{{- $f = get (dict "file" "file" "vault" "vault" "k8s" "kube" "ssm" "aws" "secretsmanager" "aws" "gcpsm" "gcp") $scheme | default "full" -}}
{{- end -}}
{{- if not (has $f (list "full" "file" "vault" "kube" "aws" "gcp")) -}}
{{- fail (printf "keysync.flavor %q: want auto, full, file, vault, kube, aws or gcp" $f) -}}
{{- end -}}
{{- $f -}}
{{- end }}

{{/* The image of a flavor (the argument: a dict with ctx and flavor). */}}
{{- define "keysync.imageOf" -}}
{{- $img := .ctx.Values.keysync.image -}}
{{- if kindIs "string" $img -}}
{{- $img -}}
{{- else if eq .flavor "full" -}}
{{- printf "%s:%s" $img.repository (toString $img.tag) -}}
{{- else -}}
{{- printf "%s:%s-%s" $img.repository (toString $img.tag) .flavor -}}
{{- end -}}
{{- end }}

{{/* The sidecar's resources: the values, with the flavor's measured memory where unset. */}}
{{- define "keysync.resources" -}}
{{- $r := deepCopy (.Values.keysync.resources | default dict) -}}
{{- $m := get .Values.keysync.flavorMemory (include "keysync.flavor" .) -}}
{{- $req := get $r "requests" | default dict -}}
{{- $lim := get $r "limits" | default dict -}}
{{- if not (hasKey $req "memory") }}{{ $_ := set $req "memory" $m.request }}{{ end -}}
{{- if not (hasKey $lim "memory") }}{{ $_ := set $lim "memory" $m.limit }}{{ end -}}
{{- $_ := set $r "requests" $req -}}
{{- $_ := set $r "limits" $lim -}}
{{- toYaml $r -}}
{{- end }}

{{- define "keysync.serviceAccount" -}}
{{- default (printf "%s-keysync" .Values.app.name) .Values.app.serviceAccountName -}}
{{- end }}

{{- define "keysync.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: { drop: ["ALL"] }
{{- end }}

{{/* The sidecar as a native sidecar: an init container with restartPolicy Always whose
startup probe passes after the first complete write, so the app starts only with keys. */}}
{{- define "keysync.sidecar" -}}
- name: keysync
  image: {{ include "keysync.imageOf" (dict "ctx" . "flavor" (include "keysync.flavor" .)) }}
  imagePullPolicy: {{ .Values.keysync.imagePullPolicy }}
  restartPolicy: Always
  args:
    - sidecar
    - --store={{ include "keysync.store" . }}
    - --out={{ .Values.keysync.mountPath }}
    - --interval={{ .Values.keysync.interval }}
    - --signal={{ .Values.keysync.signal }}
    - --signal-process={{ .Values.keysync.processName }}
    {{- with .Values.keysync.confirmURL }}
    - --confirm-url={{ . }}
    {{- end }}
    - --plain-activation-delay={{ .Values.keysync.activationDelay }}
    - --plain-verify-window={{ .Values.keysync.verifyWindow }}
    - --listen=$(POD_IP):{{ .Values.keysync.port }}
    - --log-format=json
    {{- range .Values.keysync.extraArgs }}
    - {{ . }}
    {{- end }}
  env:
    - name: POD_IP
      valueFrom: { fieldRef: { fieldPath: status.podIP } }
    # The Go runtime collects harder near the limit instead of being killed at it.
    - name: GOMEMLIMIT
      valueFrom: { resourceFieldRef: { containerName: keysync, resource: limits.memory } }
    {{- with .Values.keysync.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - { name: keysync-http, containerPort: {{ .Values.keysync.port }} }
  startupProbe:
    httpGet: { path: /readyz, port: keysync-http }
    periodSeconds: 1
    failureThreshold: 60
  livenessProbe:
    httpGet: { path: /healthz, port: keysync-http }
  readinessProbe:
    httpGet: { path: /readyz, port: keysync-http }
  resources: {{- include "keysync.resources" . | nindent 4 }}
  securityContext: {{- include "keysync.securityContext" . | nindent 4 }}
  volumeMounts:
    - { name: keysync-keys, mountPath: {{ .Values.keysync.mountPath }} }
    - { name: keysync-api-access, mountPath: /var/run/secrets/kubernetes.io/serviceaccount, readOnly: true }
{{- end }}

{{- define "keysync.volumes" -}}
- name: keysync-keys
  emptyDir: { medium: Memory, sizeLimit: 1Mi }
- name: keysync-api-access
  projected:
    sources:
      - serviceAccountToken: { path: token, expirationSeconds: 3600 }
      - configMap: { name: kube-root-ca.crt, items: [{ key: ca.crt, path: ca.crt }] }
      - downwardAPI: { items: [{ path: namespace, fieldRef: { fieldPath: metadata.namespace } }] }
{{- end }}
