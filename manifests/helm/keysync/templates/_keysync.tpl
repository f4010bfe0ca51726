{{/*
keysync library chart. An app chart depends on it and, behind keysync.enabled, includes:

  in the pod template's metadata.annotations:  keysync.podAnnotations   (Prometheus scrape)
  in the pod spec:                             keysync.podSpec          (service account, shared process namespace)
  in initContainers:                           keysync.initContainers   (the native sidecar)
  in the app container's env:                  keysync.env              (KEYSYNC_KEYS_FILE)
  in the app container's volumeMounts:         keysync.volumeMounts     (the keys, read-only)
  in volumes:                                  keysync.volumes          (in-memory keys, projected API token)
  as objects of the release:                   keysync.objects          (ServiceAccount, Role, RoleBinding, Service, NetworkPolicy, rotation CronJob)

Each takes one argument, a dict:
  ctx        the chart's root context ($)
  name       the workload's name (names the ServiceAccount, Role and CronJob: NAME-keysync…)
  selector   the workload's pod labels as a label selector (the fleet the rotation waits for)
  labels     (optional) labels for the objects, as YAML
  serviceAccountName  (optional) the app's own ServiceAccount, used instead of creating one
  podSecurityContext  (optional) the rotation job's pod securityContext
Each renders nothing while keysync.enabled is false. The values are the chart's .Values.keysync,
every key left out taking the default below (keysync.defaults).
*/}}

{{- define "keysync.defaults" -}}
# The toggle: adds the sidecar, the shared process namespace, the in-memory keys volume
# and the sidecar's RBAC to the app's pod.
enabled: false
# The sidecar's image: REPOSITORY:TAG for the full build, REPOSITORY:TAG-FLAVOR for a
# slim one. A plain string (the whole reference) is used as given, whatever the flavor.
image:
  repository: ghcr.io/sigil-dna/keysync
  tag: latest
imagePullPolicy: IfNotPresent
# The build the sidecar runs. auto: the slim build of the store URL's scheme (file,
# vault, k8s: kube, ssm and secretsmanager: aws, gcpsm: gcp), which carries that store
# alone and needs a fraction of the memory; or one of full, file, vault, kube, aws, gcp.
flavor: auto
# Store URL; empty means the Secret below in the release namespace. Others:
# vault://MOUNT/PATH, ssm:///NAME, secretsmanager://NAME, gcpsm://projects/P/secrets/NAME.
store: ""
# Extra environment of the sidecar (AWS_REGION, VAULT_ADDR, …).
env: []
# Annotations of the ServiceAccount the chart creates, e.g. for IRSA on EKS:
#   eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/keysync-sidecar
serviceAccountAnnotations: {}
secretName: spiral-event-secret
# Where the keys file is mounted in the app.
mountPath: /keys
interval: 10s
signal: HUP
# Executable name of the app process to signal (shareProcessNamespace).
processName: node
# The reload library's status endpoint in the app, to confirm each reload ("" to skip).
confirmURL: http://127.0.0.1:8080/keysync/status
# Schedule of plain values and of rotations (the same on every pod).
activationDelay: 60s
verifyWindow: 15m
port: 9102
extraArgs: []
# The sidecar's resources. A memory request or limit left out is the flavor's below;
# GOMEMLIMIT follows the memory limit.
resources:
  requests: { cpu: 5m }
  limits: { cpu: 100m }
# Memory per flavor, from the footprint measured in docs/benchmarks.md (make
# bench-footprint: the highest resident peak of the flavor plus a quarter, rounded up to
# 4 MiB; the limit twice that). A test keeps the two equal.
flavorMemory:
  file: { request: 16Mi, limit: 32Mi }
  vault: { request: 20Mi, limit: 40Mi }
  kube: { request: 28Mi, limit: 56Mi }
  aws: { request: 28Mi, limit: 56Mi }
  gcp: { request: 24Mi, limit: 48Mi }
  full: { request: 40Mi, limit: 80Mi }
# A headless Service of the sidecars' status port (NAME-keysync), for a gate that finds
# the fleet by DNS (--confirm-fleet dns://NAME-keysync.NAMESPACE.svc.cluster.local:PORT).
# It publishes pods that are not ready too, so the gate waits for them instead of losing them.
service:
  enabled: true
# A NetworkPolicy that admits the sidecar's port only from the rotation job's pods and the
# monitoring namespace (the kubelet's probes and the app's loopback are never filtered).
# Every other port of the pod is admitted from anywhere, as without a policy; if your own
# policies restrict the app, set otherPorts: false and admit the app's ports in yours.
networkPolicy:
  enabled: true
  monitoringNamespace: monitoring
  otherPorts: true
rotation:
  # A CronJob running `keysync rotate` (off by default).
  enabled: false
  schedule: "0 3 1 * *"
  reason: scheduled rotation
  # Fleet-confirmed (the default): the new key is written held and signs only once every
  # pod of this release confirms holding it (its Role gains `list` on pods). Off: the
  # timer, --activation-delay above.
  confirmFleet: true
  # The fleet to wait for; empty: this release's pods by its own selector.
  fleet: ""
  # A retry or the next run resumes a key left held by a run that timed out or was
  # killed, once it is older than confirmTimeout.
  confirmTimeout: 10m
  maxClockSkew: 5s
  # Retries and reruns within this of the last rotation rotate nothing (they bring the
  # mirrors up to the primary); empty: every run rotates.
  ifOlderThan: 600h
  # The job ends after this long whatever happens: room for its retries (backoffLimit 6;
  # the 7th attempt resumes a key a killed run left held) and one more gate.
  activeDeadlineSeconds: 2400
  # Annotations of its ServiceAccount, e.g. the rotator's IAM role for IRSA on EKS.
  serviceAccountAnnotations: {}
  resources:
    requests: { cpu: 10m, memory: 32Mi }
    limits: { cpu: 200m, memory: 128Mi }
{{- end }}

{{/* The values: .Values.keysync with each key it leaves out (two levels deep) taken from
keysync.defaults; an explicit false or empty value is kept. */}}
{{- define "keysync.values" -}}
{{- $d := fromYaml (include "keysync.defaults" .) -}}
{{- $k := deepCopy (.ctx.Values.keysync | default dict) -}}
{{- range $key, $dv := $d -}}
{{- if not (hasKey $k $key) -}}
{{- $_ := set $k $key $dv -}}
{{- else if and (kindIs "map" $dv) (kindIs "map" (get $k $key)) -}}
{{- $sub := get $k $key -}}
{{- range $k2, $v2 := $dv -}}
{{- if not (hasKey $sub $k2) }}{{ $_ := set $sub $k2 $v2 }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $k -}}
{{- end }}

{{- define "keysync.store" -}}
{{- $k := fromYaml (include "keysync.values" .) -}}
{{- default (printf "k8s://%s/%s" .ctx.Release.Namespace $k.secretName) $k.store -}}
{{- end }}

{{/* The fleet the rotation waits for: the workload's own pods, by its own selector. */}}
{{- define "keysync.fleet" -}}
{{- $k := fromYaml (include "keysync.values" .) -}}
{{- default (printf "k8s://%s?selector=%s&port=%v" .ctx.Release.Namespace .selector $k.port) $k.rotation.fleet -}}
{{- end }}

{{/* The sidecar's build: the flavor value, or with auto the slim build of the store's scheme. */}}
{{- define "keysync.flavor" -}}
{{- $k := fromYaml (include "keysync.values" .) -}}
{{- $f := $k.flavor | default "auto" -}}
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

{{/* The image of a flavor (the argument: the library's dict with flavor added). */}}
{{- define "keysync.imageOf" -}}
{{- $k := fromYaml (include "keysync.values" .) -}}
{{- $img := $k.image -}}
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
{{- $k := fromYaml (include "keysync.values" .) -}}
{{- $r := deepCopy ($k.resources | default dict) -}}
{{- $m := get $k.flavorMemory (include "keysync.flavor" .) -}}
{{- $req := get $r "requests" | default dict -}}
{{- $lim := get $r "limits" | default dict -}}
{{- if not (hasKey $req "memory") }}{{ $_ := set $req "memory" $m.request }}{{ end -}}
{{- if not (hasKey $lim "memory") }}{{ $_ := set $lim "memory" $m.limit }}{{ end -}}
{{- $_ := set $r "requests" $req -}}
{{- $_ := set $r "limits" $lim -}}
{{- toYaml $r -}}
{{- end }}

{{- define "keysync.serviceAccount" -}}
{{- default (printf "%s-keysync" .name) .serviceAccountName -}}
{{- end }}

{{- define "keysync.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: { drop: ["ALL"] }
{{- end }}

{{- define "keysync.podAnnotations" -}}
{{- $k := fromYaml (include "keysync.values" .) -}}
{{- if $k.enabled -}}
prometheus.io/path: /metrics
prometheus.io/port: {{ toString $k.port | quote }}
prometheus.io/scrape: "true"
{{- end -}}
{{- end }}

{{- define "keysync.podSpec" -}}
{{- $k := fromYaml (include "keysync.values" .) -}}
{{- if $k.enabled -}}
serviceAccountName: {{ include "keysync.serviceAccount" . }}
automountServiceAccountToken: false
shareProcessNamespace: true
{{- end -}}
{{- end }}

{{- define "keysync.env" -}}
{{- $k := fromYaml (include "keysync.values" .) -}}
{{- if $k.enabled -}}
- name: KEYSYNC_KEYS_FILE
  value: {{ $k.mountPath }}/keys.json
{{- end -}}
{{- end }}

{{- define "keysync.volumeMounts" -}}
{{- $k := fromYaml (include "keysync.values" .) -}}
{{- if $k.enabled -}}
- mountPath: {{ $k.mountPath }}
  name: keysync-keys
  readOnly: true
{{- end -}}
{{- end }}

{{/* The sidecar as a native sidecar: an init container with restartPolicy Always whose
startup probe passes after the first complete write, so the app starts only with keys. */}}
{{- define "keysync.initContainers" -}}
{{- $k := fromYaml (include "keysync.values" .) -}}
{{- if $k.enabled -}}
- name: keysync
  image: {{ include "keysync.imageOf" (merge (dict "flavor" (include "keysync.flavor" .)) .) }}
  imagePullPolicy: {{ $k.imagePullPolicy }}
  restartPolicy: Always
  args:
    - sidecar
    - --store={{ include "keysync.store" . }}
    - --out={{ $k.mountPath }}
    - --interval={{ $k.interval }}
    - --signal={{ $k.signal }}
    - --signal-process={{ $k.processName }}
    {{- with $k.confirmURL }}
    - --confirm-url={{ . }}
    {{- end }}
    - --plain-activation-delay={{ $k.activationDelay }}
    - --plain-verify-window={{ $k.verifyWindow }}
    - --listen=:{{ $k.port }}
    - --log-format=json
    {{- range $k.extraArgs }}
    - {{ . }}
    {{- end }}
  env:
    # The Go runtime collects harder near the limit instead of being killed at it.
    - name: GOMEMLIMIT
      valueFrom: { resourceFieldRef: { containerName: keysync, resource: limits.memory } }
    {{- with $k.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - { name: keysync-http, containerPort: {{ $k.port }} }
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
    - { name: keysync-keys, mountPath: {{ $k.mountPath }} }
    - { name: keysync-api-access, mountPath: /var/run/secrets/kubernetes.io/serviceaccount, readOnly: true }
{{- end -}}
{{- end }}

{{- define "keysync.volumes" -}}
{{- $k := fromYaml (include "keysync.values" .) -}}
{{- if $k.enabled -}}
- name: keysync-keys
  emptyDir: { medium: Memory, sizeLimit: 1Mi }
- name: keysync-api-access
  projected:
    sources:
      - serviceAccountToken: { path: token, expirationSeconds: 3600 }
      - configMap: { name: kube-root-ca.crt, items: [{ key: ca.crt, path: ca.crt }] }
      - downwardAPI: { items: [{ path: namespace, fieldRef: { fieldPath: metadata.namespace } }] }
{{- end -}}
{{- end }}

{{/* The objects keysync adds to the release: the sidecar's ServiceAccount (unless the app
has its own), Role and RoleBinding, and with keysync.rotation.enabled the rotation CronJob
with its own ServiceAccount and Role. */}}
{{- define "keysync.objects" -}}
{{- $k := fromYaml (include "keysync.values" .) -}}
{{- if $k.enabled }}
{{- if not .serviceAccountName }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "keysync.serviceAccount" . }}
  {{- with .labels }}
  labels: {{- . | nindent 4 }}
  {{- end }}
  {{- with $k.serviceAccountAnnotations }}
  annotations: {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
---
{{- end }}
# The sidecar may get, list and watch the one Secret: list is what an informer restricted
# by fieldSelector=metadata.name needs; resourceNames keeps it to that name.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ .name }}-keysync
  {{- with .labels }}
  labels: {{- . | nindent 4 }}
  {{- end }}
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    resourceNames: [{{ $k.secretName | quote }}]
    verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .name }}-keysync
  {{- with .labels }}
  labels: {{- . | nindent 4 }}
  {{- end }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .name }}-keysync
subjects:
  - kind: ServiceAccount
    name: {{ include "keysync.serviceAccount" . }}
    namespace: {{ .ctx.Release.Namespace }}
{{- $match := dict }}
{{- range splitList "," .selector }}{{ $kv := splitList "=" . }}{{ $_ := set $match (first $kv) (last $kv) }}{{ end }}
{{- if $k.service.enabled }}
---
# Headless, with pods that are not ready published: the gate's dns:// fleet.
apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}-keysync
  {{- with .labels }}
  labels: {{- . | nindent 4 }}
  {{- end }}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {{- toYaml $match | nindent 4 }}
  ports:
    - { name: keysync-http, port: {{ $k.port }}, targetPort: keysync-http }
{{- end }}
{{- if $k.networkPolicy.enabled }}
---
# The sidecar's port: the rotation job and the monitoring namespace only.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ .name }}-keysync
  {{- with .labels }}
  labels: {{- . | nindent 4 }}
  {{- end }}
spec:
  podSelector:
    matchLabels: {{- toYaml $match | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    - from:
        - podSelector: { matchLabels: { app.kubernetes.io/name: keysync-rotate, app.kubernetes.io/instance: {{ .name | quote }} } }
        - namespaceSelector: { matchLabels: { kubernetes.io/metadata.name: {{ $k.networkPolicy.monitoringNamespace | quote }} } }
      ports:
        - { protocol: TCP, port: {{ $k.port }} }
    {{- if $k.networkPolicy.otherPorts }}
    - ports:
        {{- if gt (int $k.port) 1 }}
        - { protocol: TCP, port: 1, endPort: {{ sub (int $k.port) 1 }} }
        {{- end }}
        {{- if lt (int $k.port) 65535 }}
        - { protocol: TCP, port: {{ add (int $k.port) 1 }}, endPort: 65535 }
        {{- end }}
        - { protocol: UDP, port: 1, endPort: 65535 }
    {{- end }}
{{- end }}
{{- if $k.rotation.enabled }}
{{- $r := $k.rotation }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .name }}-keysync-rotate
  {{- with .labels }}
  labels: {{- . | nindent 4 }}
  {{- end }}
  {{- with $r.serviceAccountAnnotations }}
  annotations: {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ .name }}-keysync-rotate
  {{- with .labels }}
  labels: {{- . | nindent 4 }}
  {{- end }}
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    resourceNames: [{{ $k.secretName | quote }}]
    verbs: ["get", "update"]
  {{- if $r.confirmFleet }}
  # The fleet gate lists the release's pods to ask each sidecar what its app holds.
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["list"]
  {{- end }}
  # Each rotation records an Event on the Secret; create only.
  - apiGroups: [""]
    resources: ["events"]
    verbs: ["create"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .name }}-keysync-rotate
  {{- with .labels }}
  labels: {{- . | nindent 4 }}
  {{- end }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .name }}-keysync-rotate
subjects:
  - kind: ServiceAccount
    name: {{ .name }}-keysync-rotate
    namespace: {{ .ctx.Release.Namespace }}
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ .name }}-keysync-rotate
  {{- with .labels }}
  labels: {{- . | nindent 4 }}
  {{- end }}
spec:
  schedule: {{ $r.schedule | quote }}
  concurrencyPolicy: Forbid
  jobTemplate:
    spec:
      backoffLimit: 6
      {{- if $r.confirmFleet }}
      activeDeadlineSeconds: {{ $r.activeDeadlineSeconds }}
      {{- end }}
      template:
        metadata:
          # The sidecars' NetworkPolicy admits the gate's requests from these pods.
          labels: { app.kubernetes.io/name: keysync-rotate, app.kubernetes.io/instance: {{ .name | quote }} }
        spec:
          serviceAccountName: {{ .name }}-keysync-rotate
          automountServiceAccountToken: true
          restartPolicy: Never
          {{- with .podSecurityContext }}
          securityContext: {{- toYaml . | nindent 12 }}
          {{- end }}
          containers:
            - name: rotate
              # The full build: a k8s:// fleet needs the Kubernetes client whatever the store.
              image: {{ include "keysync.imageOf" (merge (dict "flavor" "full") .) }}
              args:
                - rotate
                - --store={{ include "keysync.store" . }}
                {{- if $r.confirmFleet }}
                - --confirm-fleet={{ include "keysync.fleet" . }}
                - --confirm-timeout={{ $r.confirmTimeout }}
                - --max-clock-skew={{ $r.maxClockSkew }}
                {{- else }}
                - --activation-delay={{ $k.activationDelay }}
                {{- end }}
                - --verify-window={{ $k.verifyWindow }}
                {{- with $r.ifOlderThan }}
                - --if-older-than={{ . }}
                {{- end }}
                - --initiator=cronjob/{{ .name }}-keysync-rotate
                - --reason={{ $r.reason }}
                - --log-format=json
              {{- with $k.env }}
              env: {{- toYaml . | nindent 16 }}
              {{- end }}
              resources: {{- toYaml $r.resources | nindent 16 }}
              securityContext: {{- include "keysync.securityContext" . | nindent 16 }}
{{- end }}
{{- end }}
{{- end }}
