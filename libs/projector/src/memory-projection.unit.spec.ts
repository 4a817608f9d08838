import { MemoryProjection, projectionContract } from "./testing/index.ts";

// The in-memory projection the runtime's tests use must behave like the real read models.
projectionContract("memory", async () => new MemoryProjection());
