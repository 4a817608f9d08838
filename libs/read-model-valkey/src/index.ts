// The Valkey read model: the reader the query service serves from, and the client to give it.

export type { ValkeyReadModelOptions } from "./key-layout.ts";
export type { StoredStory } from "./stored-story.ts";
export type { ValkeyConnection, ValkeyConnectionConfig, ValkeyTls } from "./valkey-client.ts";
export { createValkeyClient, valkeyConnection } from "./valkey-client.ts";
export type {
  StoryUpdate,
  ValkeyContextReader,
  ValkeyReadOptions,
} from "./valkey-context-reader.ts";
export { createValkeyContextReader } from "./valkey-context-reader.ts";
// For the projector service: the projection it keeps up to date.
export { createValkeyProjection } from "./valkey-projection.ts";
