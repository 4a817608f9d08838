import { create, toBinary } from "@bufbuild/protobuf";
import { currentSchemaVersion, type StoryId, storyId } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import {
  type EventStore,
  type EventStreamSettings,
  ExpectedVersion,
  eventSubject,
  provisionEventStream,
  SIGNATURE_HEADER,
} from "@ctx/event-store";
import { envelopeAsWritten, testStreamSettings } from "@ctx/event-store/testing";
import { ContextEventSchema, SubtaskAddedSchema } from "@ctx/proto";
import { uniqueName } from "@ctx/test-support";
import { type JetStreamManager, jetstream } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/nats-core";
import type { NatsConnection } from "@nats-io/transport-node";

/**
 * An event stream as an insider with the account's administrative rights can leave it: provisioned
 * as usual, then deleted and created again without deny_delete and deny_purge (no update lifts
 * them), as a doctored restore would. For tests that tamper with stored events.
 */
export async function insiderStream(
  jsm: JetStreamManager,
  label: string,
): Promise<EventStreamSettings> {
  const settings = testStreamSettings(uniqueName(label));
  await provisionEventStream(jsm, settings);
  const { config } = await jsm.streams.info(settings.stream);
  await jsm.streams.delete(settings.stream);
  await jsm.streams.add({ ...config, deny_delete: false, deny_purge: false });
  return settings;
}

/** A story of four events (created, three subtasks), written by the store as commands write them. */
export async function fourEventStory(store: EventStore, label: string): Promise<StoryId> {
  const id = storyId(uniqueName(label));
  await store.append(
    id,
    [{ data: eventData.contextCreated({ title: label }) }],
    ExpectedVersion.NoStory,
  );
  for (const [i, title] of ["one", "two", "three"].entries()) {
    await store.append(
      id,
      [{ data: eventData.subtaskAdded({ subtaskId: `t${i}`, title }) }],
      ExpectedVersion.Any,
    );
  }
  return id;
}

/**
 * The story's next event as someone who can publish to the stream and knows the (public) hashing
 * rule forges it: a SubtaskAdded after the head, hashed by the rule (`hash` says otherwise, e.g. all
 * zeros), published past the store with `signature` as its Ctx-Signature header when given.
 * Resolves to its stream sequence.
 */
export async function publishForgedEvent(
  nc: NatsConnection,
  store: EventStore,
  id: StoryId,
  forged: { readonly hash?: Uint8Array; readonly signature?: string } = {},
): Promise<number> {
  const head = await store.head(id);
  const envelope = envelopeAsWritten(
    id,
    (head?.version ?? 0) + 1,
    head?.hash ?? new Uint8Array(0),
    {
      eventType: "SubtaskAdded",
      schemaVersion: currentSchemaVersion.SubtaskAdded,
      payloadSchema: SubtaskAddedSchema,
      payload: create(SubtaskAddedSchema, { subtaskId: "forged", title: "Forged" }),
      occurredAt: new Date(),
    },
  );
  if (forged.hash !== undefined) envelope.hash = forged.hash;
  const headers = natsHeaders();
  if (forged.signature !== undefined) headers.set(SIGNATURE_HEADER, forged.signature);
  const ack = await jetstream(nc).publish(
    eventSubject(store.names, id, "SubtaskAdded"),
    toBinary(ContextEventSchema, envelope),
    { headers },
  );
  return ack.seq;
}
