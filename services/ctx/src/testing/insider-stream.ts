import { type StoryId, storyId } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import {
  type EventStore,
  type EventStreamSettings,
  ExpectedVersion,
  provisionEventStream,
} from "@ctx/event-store";
import { testStreamSettings } from "@ctx/event-store/testing";
import { uniqueName } from "@ctx/test-support";
import type { JetStreamManager } from "@nats-io/jetstream";

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
