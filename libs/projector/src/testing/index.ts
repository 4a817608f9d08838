export { MemoryProjection } from "./memory-projection.ts";
export {
  expectedContext,
  projectionContract,
  recorded,
  sampleHistory,
} from "./projection-contract.ts";
