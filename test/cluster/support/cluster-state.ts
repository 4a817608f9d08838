import type { JetStreamManager } from "@nats-io/jetstream";

/** A node of the cluster as the checks need it (a TestNatsNode of @ctx/test-support). */
export interface ClusterNode {
  readonly name: string;
  readonly monitorUrl: string;
}

/** The server name of the stream's leader, from stream info (`cluster.leader`); undefined during an election. */
export async function streamLeader(
  jsm: JetStreamManager,
  stream: string,
): Promise<string | undefined> {
  const info = await jsm.streams.info(stream);
  return info.cluster?.leader || undefined;
}

/**
 * Throws unless the cluster is whole again: every node's `/healthz` says ok (nats-server answers
 * it only when its JetStream assets are current) and every stream of the account (events, parked,
 * snapshots, the lease buckets) has a leader and every replica current and online. For `eventually`.
 */
export async function expectClusterCurrent(
  nodes: readonly ClusterNode[],
  jsm: JetStreamManager,
): Promise<void> {
  for (const node of nodes) {
    const response = await fetch(`${node.monitorUrl}/healthz`).catch((e: unknown) => e as Error);
    if (response instanceof Error || !response.ok) {
      throw new Error(
        `${node.name} is not healthy: ${response instanceof Error ? response.message : response.status}`,
      );
    }
  }
  for await (const info of jsm.streams.list()) {
    const cluster = info.cluster;
    const name = info.config.name;
    if (info.config.num_replicas <= 1) continue;
    if (!cluster?.leader) throw new Error(`${name} has no leader`);
    const replicas = cluster.replicas ?? [];
    if (replicas.length !== info.config.num_replicas - 1) {
      throw new Error(
        `${name} has ${replicas.length} followers, not ${info.config.num_replicas - 1}`,
      );
    }
    for (const replica of replicas) {
      if (!replica.current || replica.offline) {
        throw new Error(
          `${name}: ${replica.name} is ${replica.offline ? "offline" : "not current"}`,
        );
      }
    }
  }
}

/** The node with the most client connections (`/connz`): where a fault hits the most clients. */
export async function busiestNode<N extends ClusterNode>(
  nodes: readonly N[],
  except: ReadonlySet<string> = new Set(),
): Promise<N> {
  let best: { node: N; connections: number } | undefined;
  for (const node of nodes) {
    if (except.has(node.name)) continue;
    const connz = (await (await fetch(`${node.monitorUrl}/connz`)).json()) as {
      num_connections: number;
    };
    if (best === undefined || connz.num_connections > best.connections) {
      best = { node, connections: connz.num_connections };
    }
  }
  if (best === undefined) throw new Error("no node to choose from");
  return best.node;
}
