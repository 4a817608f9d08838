import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import { untilAborted } from "@ctx/config";
import type { EventStore, StoredMessage } from "@ctx/event-store";
import {
  ContextAuditService,
  ListAuditCheckpointsResponseSchema,
  ListStreamMessagesResponseSchema,
} from "@ctx/proto";
import { defaultPageSize } from "../events/list-events.ts";
import { pageOfStored, storedPageBytes } from "../events/list-stored-events.ts";

/** What the audit service reads: the event stream, and the checkpoint stream a page at a time. */
export interface AuditServiceParts {
  readonly store: EventStore;
  readonly checkpoints: (options: {
    readonly afterSequence: number;
    readonly limit: number;
  }) => Promise<readonly StoredMessage[]>;
}

/**
 * context.v1.ContextAuditService: the whole event stream and its signed checkpoints exactly as
 * stored, so an auditor verifies every chain and every checkpoint without trusting this service
 * (tools/audit/verify_chain.py --all). Pages are stream positions, as ListStoredEvents' are.
 */
export function registerAuditService(router: ConnectRouter, parts: AuditServiceParts): void {
  const { store, checkpoints } = parts;
  router.service(ContextAuditService, {
    async listStreamMessages(req, ctx) {
      const pageSize = req.pageSize === 0 ? defaultPageSize : req.pageSize;
      const afterSequence = Number(req.afterSequence);
      const read = await untilAborted(
        store.streamMessages({ afterSequence, limit: pageSize + 1, maxBytes: storedPageBytes }),
        ctx.signal,
      );
      return create(ListStreamMessagesResponseSchema, pageOfStored(read, pageSize));
    },

    async listAuditCheckpoints(req, ctx) {
      const pageSize = req.pageSize === 0 ? defaultPageSize : req.pageSize;
      const read = await untilAborted(
        checkpoints({ afterSequence: Number(req.afterSequence), limit: pageSize + 1 }),
        ctx.signal,
      );
      const page = read.slice(0, pageSize);
      const last = page[page.length - 1];
      return create(ListAuditCheckpointsResponseSchema, {
        checkpoints: page.map((m) => ({
          sequence: BigInt(m.seq),
          data: m.data,
          storedAt: timestampFromDate(m.time),
        })),
        nextAfterSequence: read.length > pageSize && last !== undefined ? BigInt(last.seq) : 0n,
      });
    },
  });
}
