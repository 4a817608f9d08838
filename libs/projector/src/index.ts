export type { BackoffDelays, BackoffSettings, OutageRetry, OutageRetryOptions } from "./backoff.ts";
export {
  backoffDelays,
  defaultBackoffSettings,
  exponentialBackoff,
  outageRetry,
} from "./backoff.ts";
export type { DecodedBatch } from "./batch-applier.ts";
export { BatchApplier } from "./batch-applier.ts";
export type { BoundedPull, BoundedPullOptions, Delivery } from "./bounded-pull.ts";
export { createBoundedPull } from "./bounded-pull.ts";
export {
  isParkedListingError,
  isProjectorError,
  isPullEndedError,
  isStoreUnavailableError,
  isVersionConflictError,
  ParkedListingError,
  ProjectorError,
  PullEndedError,
  StoreUnavailableError,
  VersionConflictError,
} from "./errors.ts";
export type { ParkedEvent, ParkingNames, ParkRequest } from "./parking.ts";
export {
  defaultParkingNames,
  listParked,
  park,
  provisionParking,
  removeParked,
} from "./parking.ts";
export type {
  LeaseHealth,
  LeaseObserver,
  LeaseTable,
  PartitionLeases,
  PartitionLeasesOptions,
} from "./partition-leases.ts";
export {
  createPartitionLeases,
  desiredOwner,
  leaseBucket,
  readLeaseTable,
} from "./partition-leases.ts";
// For sibling libs and the ctx CLI.
export { consumerPrefix, partitionConsumers } from "./partition-worker.ts";
export type { Projection, ProjectionBatch, StoryEvents, StoryPosition } from "./projection.ts";
export type { PartitionStatus, Projector, ProjectorOptions } from "./projector.ts";
export {
  createProjector,
  DEFAULT_BATCH_SIZE,
  DEFAULT_PULL_MAX_BYTES,
  leaseGroup,
} from "./projector.ts";
export type { RebuildOptions, RebuildProgress, RebuildResult } from "./rebuild.ts";
export { rebuildProjection, rebuildStory } from "./rebuild.ts";
