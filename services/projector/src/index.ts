export type { ProjectorApp } from "./app.ts";
export { startProjectorApp } from "./app.ts";
export type { ProjectorConfig, ReadModelKind } from "./config.ts";
export { loadProjectorConfig, projectorConfigSchema, readModelKinds } from "./config.ts";
export type { OpenReadModel, ReadModelSettings } from "./read-models.ts";
export { openReadModel } from "./read-models.ts";
