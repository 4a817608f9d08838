import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  type KubeObject,
  type LocalBindings,
  localSecretFile,
  podsFromManifests,
} from "./pods-from-manifests.ts";

const secrets = mkdtempSync(join(tmpdir(), "pods-spec-"));
writeFileSync(join(secrets, "seed"), "SUAseed");
writeFileSync(join(secrets, "password"), "s3cret");

const local: LocalBindings = {
  image: (ref) => `localhost/${ref.split("/").pop()?.split(":")[0]}:test`,
  env: { NATS_URL: "nats://127.0.0.1:4999", VALKEY_URL: "redis://127.0.0.1:6999" },
  secret: (name) =>
    name === "nats-user-projector"
      ? { "seed.nk": join(secrets, "seed") }
      : name === "store-auth"
        ? { password: join(secrets, "password") }
        : undefined,
  volumesDir: "/volumes",
};

const config: KubeObject = {
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name: "ctx-config" },
  data: { NATS_URL: "nats://nats:4222", LOG_LEVEL: "info", READ_MODEL_NAMESPACE: "ctx" },
};
const securityContext = {
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ["ALL"] },
};
const projector: KubeObject = {
  apiVersion: "apps/v1",
  kind: "StatefulSet",
  metadata: { name: "projector", namespace: "ctx-ns" },
  spec: {
    template: {
      metadata: { labels: { app: "projector" } },
      spec: {
        securityContext: { runAsUser: 10001, runAsNonRoot: true },
        automountServiceAccountToken: false,
        topologySpreadConstraints: [{ maxSkew: 1 }],
        containers: [
          {
            name: "projector",
            image: "registry.example.com/context/ctx-projector:1.0",
            envFrom: [{ configMapRef: { name: "ctx-config" } }],
            env: [
              { name: "LOG_LEVEL", value: "debug" },
              { name: "REPLICA", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
              { name: "NS", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
              {
                name: "STORE_PASSWORD",
                valueFrom: { secretKeyRef: { name: "store-auth", key: "password" } },
              },
            ],
            ports: [{ containerPort: 9561, name: "ops" }],
            readinessProbe: { grpc: { port: 9561 } },
            lifecycle: { preStop: { sleep: { seconds: 5 } } },
            resources: { limits: { memory: "256Mi" } },
            securityContext,
            volumeMounts: [
              { name: "nats-user", mountPath: "/secrets/nats", readOnly: true },
              { name: "tmp", mountPath: "/tmp" },
            ],
          },
        ],
        volumes: [
          { name: "nats-user", secret: { secretName: "nats-user-projector", defaultMode: 0o400 } },
          {
            name: "conf",
            configMap: { name: "ctx-config", items: [{ key: "LOG_LEVEL", path: "level" }] },
          },
          { name: "tmp", emptyDir: { sizeLimit: "16Mi" } },
        ],
      },
    },
  },
};

describe("the pods of the manifests, for podman", () => {
  it("runs a StatefulSet as its ordinal 0 with the template's image, environment, security and mounts", () => {
    // Given a StatefulSet whose env comes from a ConfigMap, a Secret and the pod's own fields
    // When its pod is made with the listen address of this pod set
    const plan = podsFromManifests(
      [config, projector],
      [{ workload: "StatefulSet/projector", env: { OPS_LISTEN: "127.0.0.1:9999" } }],
      local,
    );
    // Then it is one Pod named after ordinal 0, on the host network, never restarted
    const pod = plan.pods[0] as unknown as {
      metadata: { name: string };
      spec: Record<string, unknown>;
    };
    expect(pod.metadata.name).toBe("projector-0");
    expect(pod.spec.hostNetwork).toBe(true);
    expect(pod.spec.restartPolicy).toBe("Never");
    expect(pod.spec.securityContext).toEqual({ runAsUser: 10001, runAsNonRoot: true });
    expect(pod.spec.topologySpreadConstraints).toBeUndefined();
    const [container] = pod.spec.containers as Record<string, unknown>[];
    expect(container?.image).toBe("localhost/ctx-projector:test");
    expect(container?.securityContext).toEqual(securityContext);
    expect(container?.resources).toEqual({ limits: { memory: "256Mi" } });
    expect(container?.volumeMounts).toHaveLength(2);
    // And env is written out: the container's own over the ConfigMap's, the local addresses over both
    expect(container?.env).toEqual([
      { name: "NATS_URL", value: "nats://127.0.0.1:4999" },
      { name: "LOG_LEVEL", value: "debug" },
      { name: "READ_MODEL_NAMESPACE", value: "ctx" },
      { name: "REPLICA", value: "projector-0" },
      { name: "NS", value: "ctx-ns" },
      { name: "STORE_PASSWORD", value: "s3cret" },
      { name: "OPS_LISTEN", value: "127.0.0.1:9999" },
    ]);
    // And only the addresses count as overridden: VALKEY_URL is not the pod's
    expect(plan.overridden).toEqual({ "projector-0": ["NATS_URL", "OPS_LISTEN"] });
    // And what a cluster does around the container is left out
    for (const field of ["ports", "readinessProbe", "lifecycle"]) {
      expect(container?.[field]).toBeUndefined();
    }
  });

  it("turns Secret and ConfigMap volumes into host folders holding their keys as files", () => {
    const plan = podsFromManifests(
      [config, projector],
      [{ workload: "StatefulSet/projector" }],
      local,
    );
    const pod = plan.pods[0] as unknown as { spec: { volumes: unknown[] } };
    expect(pod.spec.volumes).toEqual([
      {
        name: "nats-user",
        hostPath: { path: "/volumes/projector-0/nats-user", type: "Directory" },
      },
      { name: "conf", hostPath: { path: "/volumes/projector-0/conf", type: "Directory" } },
      { name: "tmp", emptyDir: { sizeLimit: "16Mi" } },
    ]);
    expect(plan.files).toEqual([
      { path: "/volumes/projector-0/nats-user/seed.nk", mode: 0o400, from: join(secrets, "seed") },
      { path: "/volumes/projector-0/conf/level", mode: 0o644, content: "info" },
    ]);
  });

  it("refuses what it cannot stand for instead of running a pod without it", () => {
    const noSecret = { ...local, secret: () => undefined };
    expect(() =>
      podsFromManifests([config, projector], [{ workload: "StatefulSet/projector" }], noSecret),
    ).toThrow(/nothing here stands for the key password of the Secret store-auth/);
    expect(() =>
      podsFromManifests([config], [{ workload: "StatefulSet/projector" }], local),
    ).toThrow(/the manifests have no StatefulSet\/projector/);
    expect(() =>
      podsFromManifests([projector], [{ workload: "StatefulSet/projector" }], local),
    ).toThrow(/no ConfigMap ctx-config/);
  });

  it("finds each Secret of the manifests in the local stack's secrets", () => {
    expect(localSecretFile("/s", "nats-user-projector-neo4j", "seed.nk")).toBe(
      "/s/secrets/nats/projector-neo4j.nk",
    );
    expect(localSecretFile("/s", "valkey-user-query", "password")).toBe("/s/secrets/valkey/query");
    expect(localSecretFile("/s", "neo4j-auth", "password")).toBe("/s/secrets/neo4j/password");
    expect(localSecretFile("/s", "auth-jwks", "jwks.json")).toBe("/s/secrets/auth/jwks.json");
    expect(localSecretFile("/s", "neo4j-auth", "auth")).toBeUndefined();
  });
});
