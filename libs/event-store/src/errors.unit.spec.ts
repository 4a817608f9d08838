import { JetStreamApiError } from "@nats-io/jetstream";
import { errors as natsErrors } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { isNatsOutage } from "./errors.ts";

const apiError = (code: number, errCode: number, description: string) =>
  new JetStreamApiError({ code, err_code: errCode, description });

describe("isNatsOutage", () => {
  it("takes a cluster's 'no leader or quorum right now' answers for outages", () => {
    // Given the answers a clustered stream gives while it elects a leader or a node comes back
    const answers = [
      apiError(503, 10008, "JetStream system temporarily unavailable"),
      apiError(500, 10009, "JetStream cluster can not handle request"),
      apiError(500, 10118, "stream is offline"),
      apiError(500, 10194, "stream is offline: catching up"),
      apiError(503, 10163, "expected last sequence per subject temporarily unavailable"),
    ];
    // Then each is an outage: retried with back-off, UNAVAILABLE at the RPC edge, never INTERNAL
    for (const answer of answers) expect(isNatsOutage(answer), answer.message).toBe(true);
  });

  it("takes timeouts, closed connections and missing responders for outages", () => {
    expect(isNatsOutage(new natsErrors.TimeoutError())).toBe(true);
    expect(isNatsOutage(new natsErrors.ClosedConnectionError())).toBe(true);
    expect(isNatsOutage(new natsErrors.NoRespondersError("$JS.API.STREAM.MSG.GET.x"))).toBe(true);
  });

  it("does not take answers about the request itself for outages", () => {
    // Given answers that a retry of the same request would get again
    expect(isNatsOutage(apiError(400, 10071, "wrong last sequence: 4"))).toBe(false);
    expect(isNatsOutage(apiError(404, 10037, "no message found"))).toBe(false);
    expect(isNatsOutage(apiError(404, 10059, "stream not found"))).toBe(false);
    expect(isNatsOutage(new Error("anything else"))).toBe(false);
  });
});
