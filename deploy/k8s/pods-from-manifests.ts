import { readFileSync } from "node:fs";
import { join } from "node:path";

// The pods of a rendered overlay, made runnable by `podman kube play` on one machine
// (make test-pods): the same images, entrypoints, environment, security contexts, resources and
// mounts as the cluster would run, with exactly these differences, each one reported:
// - the pod joins the host's network (podman here has no network of its own), so the addresses
//   a pod dials (the stores, by their cluster names) and the ones it listens on (ports would clash
//   on one host) are overridden by name;
// - Secret and ConfigMap volumes become host folders holding the same keys as files, written
//   from the local stores' own secrets (a key without one is an error, never an empty file);
// - env from ConfigMaps and Secrets, and the pod's own name, are written out as values;
// - probes, ports and lifecycle hooks are left out: podman 4.3 has no gRPC probe and the runner
//   polls each pod's /readyz itself; a StatefulSet runs as its ordinal 0 (`<name>-0`).

/** A workload of the manifests to run as one pod, and the variables only this pod overrides. */
export interface PodRun {
  /** `Deployment/command`, `StatefulSet/projector-neo4j`. */
  readonly workload: string;
  /** Set whether or not the manifests set them (e.g. the listen addresses the image defaults). */
  readonly env?: Readonly<Record<string, string>>;
}

/** What differs from a cluster on this machine. */
export interface LocalBindings {
  /** The image to run for a reference of the manifests. */
  image(reference: string): string;
  /** Variables every pod gets instead of the manifests' values, where the pod has them. */
  readonly env: Readonly<Record<string, string>>;
  /** The files that stand for a Secret's keys here, by key; undefined when there are none. */
  secret(name: string): Readonly<Record<string, string>> | undefined;
  /** Where the pods' Secret and ConfigMap volumes are written: `<dir>/<pod>/<volume>/<path>`. */
  readonly volumesDir: string;
}

/** A file of a volume: copied from a local secret, or written with a ConfigMap's value. */
export interface VolumeFile {
  readonly path: string;
  readonly mode: number;
  readonly from?: string;
  readonly content?: string;
}

export interface PodsPlan {
  /** One Pod per run, for `podman kube play`. */
  readonly pods: readonly KubeObject[];
  readonly files: readonly VolumeFile[];
  /** Per pod, the variables whose value differs from the manifests' (or that they do not set). */
  readonly overridden: Readonly<Record<string, readonly string[]>>;
}

// Only the fields read here; the rest of each object is carried over as it is.
type Json = Record<string, unknown>;
export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string } & Json;
  readonly [field: string]: unknown;
}
interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: {
    readonly fieldRef?: { readonly fieldPath: string };
    readonly configMapKeyRef?: { readonly name: string; readonly key: string };
    readonly secretKeyRef?: { readonly name: string; readonly key: string };
    readonly resourceFieldRef?: unknown;
  };
}
interface EnvFrom {
  readonly prefix?: string;
  readonly configMapRef?: { readonly name: string };
  readonly secretRef?: { readonly name: string };
}
interface Container extends Json {
  readonly name: string;
  readonly image: string;
  readonly env?: readonly EnvVar[];
  readonly envFrom?: readonly EnvFrom[];
}
interface KeyToPath {
  readonly key: string;
  readonly path: string;
  readonly mode?: number;
}
interface Volume extends Json {
  readonly name: string;
  readonly secret?: {
    readonly secretName: string;
    readonly items?: readonly KeyToPath[];
    readonly defaultMode?: number;
  };
  readonly configMap?: {
    readonly name: string;
    readonly items?: readonly KeyToPath[];
    readonly defaultMode?: number;
  };
  readonly emptyDir?: Json;
}

/** Kubernetes' mode for the files of a Secret or ConfigMap volume that names none. */
const defaultVolumeMode = 0o644;

/** Builds the pods of `runs` from the objects of a rendered overlay. */
export function podsFromManifests(
  objects: readonly KubeObject[],
  runs: readonly PodRun[],
  local: LocalBindings,
): PodsPlan {
  const configMaps = new Map(
    objects
      .filter((o) => o.kind === "ConfigMap")
      .map((o) => [o.metadata.name, (o.data ?? {}) as Record<string, string>]),
  );
  const pods: KubeObject[] = [];
  const files: VolumeFile[] = [];
  const overridden: Record<string, string[]> = {};
  for (const run of runs) {
    const [kind, name] = run.workload.split("/");
    const workload = objects.find((o) => o.kind === kind && o.metadata.name === name);
    if (!workload || !name) throw new Error(`the manifests have no ${run.workload}`);
    const template = (workload.spec as Json | undefined)?.template as Json | undefined;
    const spec = template?.spec as Json | undefined;
    if (!template || !spec) throw new Error(`${run.workload} has no pod template`);
    const podName = kind === "StatefulSet" ? `${name}-0` : name;
    const namespace = workload.metadata.namespace ?? "default";
    const where = `${run.workload} (pod ${podName})`;

    const configMapValue = (ref: { name: string; key: string }): string => {
      const value = configMaps.get(ref.name)?.[ref.key];
      if (value === undefined) throw new Error(`${where}: no ConfigMap ${ref.name} key ${ref.key}`);
      return value;
    };
    const secretValue = (ref: { name: string; key: string }): string =>
      readFileSync(secretPath(ref.name, ref.key), "utf8");
    const secretPath = (secret: string, key: string): string => {
      const file = local.secret(secret)?.[key];
      if (file === undefined) {
        throw new Error(`${where}: nothing here stands for the key ${key} of the Secret ${secret}`);
      }
      return file;
    };

    const changed = new Set<string>();
    const container = (c: Container): Json => {
      const env = new Map<string, string>();
      for (const from of c.envFrom ?? []) {
        if (from.secretRef) {
          throw new Error(
            `${where}: envFrom a Secret is not supported here (${from.secretRef.name})`,
          );
        }
        if (!from.configMapRef) continue;
        const data = configMaps.get(from.configMapRef.name);
        if (!data) throw new Error(`${where}: no ConfigMap ${from.configMapRef.name}`);
        for (const [k, v] of Object.entries(data)) env.set(`${from.prefix ?? ""}${k}`, v);
      }
      for (const e of c.env ?? []) env.set(e.name, envValue(e));
      for (const [k, v] of Object.entries(local.env)) {
        if (env.has(k) && env.get(k) !== v) {
          env.set(k, v);
          changed.add(k);
        }
      }
      for (const [k, v] of Object.entries(run.env ?? {})) {
        if (env.get(k) !== v) changed.add(k);
        env.set(k, v);
      }
      const {
        env: _env,
        envFrom: _envFrom,
        ports: _ports,
        livenessProbe: _l,
        readinessProbe: _r,
        startupProbe: _s,
        lifecycle: _lifecycle,
        ...rest
      } = c;
      return {
        ...rest,
        image: local.image(c.image),
        env: [...env].map(([k, v]) => ({ name: k, value: v })),
      };
    };
    const envValue = (e: EnvVar): string => {
      if (e.value !== undefined) return e.value;
      const from = e.valueFrom;
      if (from?.fieldRef?.fieldPath === "metadata.name") return podName;
      if (from?.fieldRef?.fieldPath === "metadata.namespace") return namespace;
      if (from?.configMapKeyRef) return configMapValue(from.configMapKeyRef);
      if (from?.secretKeyRef) return secretValue(from.secretKeyRef);
      throw new Error(`${where}: the source of ${e.name} is not supported here`);
    };

    const volume = (v: Volume): Json => {
      const dir = join(local.volumesDir, podName, v.name);
      if (v.secret) {
        // Without items, a Secret volume holds every key: those the local secret has.
        const keys: readonly KeyToPath[] =
          v.secret.items ??
          Object.keys(local.secret(v.secret.secretName) ?? {}).map((key) => ({ key, path: key }));
        if (keys.length === 0) {
          throw new Error(`${where}: nothing here stands for the Secret ${v.secret.secretName}`);
        }
        for (const item of keys) {
          files.push({
            path: join(dir, item.path),
            mode: item.mode ?? v.secret.defaultMode ?? defaultVolumeMode,
            from: secretPath(v.secret.secretName, item.key),
          });
        }
        return { name: v.name, hostPath: { path: dir, type: "Directory" } };
      }
      if (v.configMap) {
        const data = configMaps.get(v.configMap.name);
        if (!data) throw new Error(`${where}: no ConfigMap ${v.configMap.name}`);
        const keys: readonly KeyToPath[] =
          v.configMap.items ?? Object.keys(data).map((key) => ({ key, path: key }));
        for (const item of keys) {
          files.push({
            path: join(dir, item.path),
            mode: item.mode ?? v.configMap.defaultMode ?? defaultVolumeMode,
            content: configMapValue({ name: v.configMap.name, key: item.key }),
          });
        }
        return { name: v.name, hostPath: { path: dir, type: "Directory" } };
      }
      if (v.emptyDir) return v;
      throw new Error(`${where}: the volume ${v.name} is of a kind not supported here`);
    };

    const { containers, initContainers, volumes, ...podSpec } = spec as {
      containers: Container[];
      initContainers?: Container[];
      volumes?: Volume[];
    } & Json;
    pods.push({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: podName,
        ...((template.metadata as Json | undefined)?.labels
          ? { labels: (template.metadata as Json).labels }
          : {}),
      },
      spec: {
        ...withoutClusterFields(podSpec),
        hostNetwork: true,
        restartPolicy: "Never",
        ...(initContainers ? { initContainers: initContainers.map(container) } : {}),
        containers: containers.map(container),
        ...(volumes ? { volumes: volumes.map(volume) } : {}),
      },
    });
    overridden[podName] = [...changed].sort();
  }
  return { pods, files, overridden };
}

/** Fields that place or schedule a pod in a cluster, meaningless on one host. */
function withoutClusterFields(spec: Json): Json {
  const {
    topologySpreadConstraints: _t,
    affinity: _a,
    nodeSelector: _n,
    tolerations: _tol,
    priorityClassName: _p,
    serviceAccountName: _sa,
    automountServiceAccountToken: _token,
    enableServiceLinks: _links,
    terminationGracePeriodSeconds: _grace,
    ...rest
  } = spec;
  return rest;
}

/**
 * The local stack's files for the keys of a Secret the manifests reference (deploy/local keeps them
 * in `$STACK_DIR/secrets`; the keys are those deploy/k8s/secrets.sh gives each Secret), or undefined.
 */
export function localSecret(
  stackDir: string,
  secret: string,
): Readonly<Record<string, string>> | undefined {
  const secrets = join(stackDir, "secrets");
  const role = /^nats-user-(.+)$/.exec(secret)?.[1];
  if (role) return { "seed.nk": join(secrets, "nats", `${role}.nk`) };
  const user = /^valkey-user-(.+)$/.exec(secret)?.[1];
  if (user) return { password: join(secrets, "valkey", user) };
  switch (secret) {
    case "neo4j-auth":
      return { password: join(secrets, "neo4j", "password") };
    case "auth-jwks":
      return { "jwks.json": join(secrets, "auth", "jwks.json") };
    case "nats-ca":
      return { "ca.crt": join(stackDir, "pki", "ca.pem") };
    default:
      return undefined;
  }
}

/** The local stack's file for one key of a Secret (see localSecret), or undefined. */
export function localSecretFile(stackDir: string, secret: string, key: string): string | undefined {
  return localSecret(stackDir, secret)?.[key];
}
