// Test helpers for temporal reads; needs fast-check.
export type { HistoryOptions } from "./story-histories.ts";
export { storyHistories } from "./story-histories.ts";
