// @ctx/event-store/direct-get: JetStream's batched direct gets, as the event store reads with them,
// for the product's other libraries that read streams of their own the same way (parked events,
// partition leases, snapshots, the operations log). Not part of the event store's API: readers of
// events go through EventStore.
export { batchExtent, collectDirectBatch, directGet } from "./direct-batch.ts";
