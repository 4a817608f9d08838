// Upcasting: stored events of old schema versions, brought to their current shape by pure steps.
export {
  isUpcastError,
  isUpcasterChainError,
  UpcastError,
  UpcasterChainError,
  UpcastingError,
} from "./errors.ts";
export type { UpcasterRegistry, UpcasterRegistryOptions } from "./registry.ts";
export { createUpcasterRegistry } from "./registry.ts";
export type { EventShape, Upcaster, VersionedEvent } from "./upcaster.ts";
export { drop, rename, split, transform } from "./upcaster.ts";
