// Writes the pods of a rendered overlay for `podman kube play` (deploy/k8s/pods.sh, make test-pods):
// node deploy/k8s/pods-plan.ts <rendered.yaml> <out-dir>
// Env: STACK_DIR (the local stores' stack: their secrets), NATS_URL, VALKEY_URL, NEO4J_URL (where
//      the pods reach them), IMAGE_TAG (the local images' tag, localhost/ctx-<name>:<tag>), and the
//      ports each pod listens on: COMMAND_PORT, COMMAND_OPS_PORT, QUERY_PORT, QUERY_OPS_PORT,
//      PROJECTOR_NEO4J_OPS_PORT, PROJECTOR_VALKEY_OPS_PORT.
// Writes <out-dir>/pods.yaml, each volume's files under <out-dir>/volumes, and prints a JSON summary:
// the pods, their ops URLs, the variables overridden per pod, and the issuer and audience the
// services check tokens against.
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseAllDocuments, stringify } from "yaml";
import {
  type KubeObject,
  localSecret,
  type PodRun,
  podsFromManifests,
} from "./pods-from-manifests.ts";

const [rendered, out] = process.argv.slice(2);
if (!rendered || !out) {
  console.error("usage: node deploy/k8s/pods-plan.ts <rendered.yaml> <out-dir>");
  process.exit(2);
}
const need = (name: string): string => {
  const value = process.env[name];
  if (!value) {
    console.error(`pods-plan: ${name} is not set`);
    process.exit(2);
  }
  return value;
};

const stackDir = need("STACK_DIR");
const tag = need("IMAGE_TAG");
const listen = (port: string) => `127.0.0.1:${need(port)}`;
const runs: PodRun[] = [
  {
    workload: "Deployment/command",
    env: { COMMAND_LISTEN: listen("COMMAND_PORT"), COMMAND_OPS_LISTEN: listen("COMMAND_OPS_PORT") },
  },
  {
    workload: "Deployment/query",
    env: { QUERY_LISTEN: listen("QUERY_PORT"), QUERY_OPS_LISTEN: listen("QUERY_OPS_PORT") },
  },
  {
    workload: "StatefulSet/projector-neo4j",
    env: { PROJECTOR_OPS_LISTEN: listen("PROJECTOR_NEO4J_OPS_PORT") },
  },
  {
    workload: "StatefulSet/projector-valkey",
    env: { PROJECTOR_OPS_LISTEN: listen("PROJECTOR_VALKEY_OPS_PORT") },
  },
];

const objects = parseAllDocuments(readFileSync(rendered, "utf8"))
  .map((d) => d.toJSON() as KubeObject | null)
  .filter((o): o is KubeObject => o !== null);
const volumesDir = join(out, "volumes");
const plan = podsFromManifests(objects, runs, {
  // registry.example.com/context/ctx-command:dev → localhost/ctx-command:<tag>
  image: (reference) => {
    const name = /\/(ctx-[a-z]+)(?::[^/@]*)?(?:@.*)?$/.exec(reference)?.[1];
    if (!name) throw new Error(`${reference} is not an image of the context service`);
    return `localhost/${name}:${tag}`;
  },
  env: { NATS_URL: need("NATS_URL"), VALKEY_URL: need("VALKEY_URL"), NEO4J_URL: need("NEO4J_URL") },
  secret: (name) => localSecret(stackDir, name),
  volumesDir,
});

rmSync(volumesDir, { recursive: true, force: true });
for (const file of plan.files) {
  mkdirSync(dirname(file.path), { recursive: true, mode: 0o755 });
  if (file.from !== undefined) copyFileSync(file.from, file.path);
  else writeFileSync(file.path, file.content ?? "");
  chmodSync(file.path, file.mode);
}
writeFileSync(join(out, "pods.yaml"), plan.pods.map((p) => stringify(p)).join("---\n"));

const envOf = (pod: KubeObject, name: string): string | undefined => {
  const containers = (pod.spec as { containers: { env: { name: string; value: string }[] }[] })
    .containers;
  return containers.flatMap((c) => c.env).find((e) => e.name === name)?.value;
};
const command = plan.pods.find((p) => p.metadata.name === "command");
console.log(
  JSON.stringify({
    pods: plan.pods.map((p) => p.metadata.name),
    overridden: plan.overridden,
    auth: command
      ? { issuer: envOf(command, "AUTH_ISSUER"), audience: envOf(command, "AUTH_AUDIENCE") }
      : undefined,
  }),
);
