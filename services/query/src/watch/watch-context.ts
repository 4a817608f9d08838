import type { HandlerContext } from "@connectrpc/connect";
import type { StoryId } from "@ctx/domain";
import type { WatchContextResponse } from "@ctx/proto";
import { callConnectionOf, principalOf } from "@ctx/rpc";
import type { WatchHub } from "./watch-hub.ts";

/**
 * WatchContext: the story's current state, then its state after every new event (see WatchHub).
 * The client, for the limit per client, is the authenticated principal: one caller's watches count
 * together from whatever addresses and connections they come, and callers behind one address (a
 * proxy, a NAT) do not share a limit. Only with AUTH=off is it the peer's address (IPv4-mapped IPv6
 * as IPv4).
 */
export function watchContext(
  hub: WatchHub,
  storyId: StoryId,
  ctx: Pick<HandlerContext, "signal" | "values">,
): AsyncGenerator<WatchContextResponse> {
  const connection = callConnectionOf(ctx);
  const principal = principalOf(ctx);
  const address = connection?.remoteAddress ?? "";
  return hub.watch(storyId, {
    signal: ctx.signal,
    client:
      principal !== undefined
        ? `principal ${principal.id}`
        : `address ${address.startsWith("::ffff:") ? address.slice(7) : address}`,
    ...(connection ? { shed: () => connection.shed() } : {}),
  });
}
