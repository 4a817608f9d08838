import { create } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { type Command, storyId } from "@ctx/domain";
import { uuidv7 } from "@ctx/ids";
import { CommandResultSchema, ContextCommandService } from "@ctx/proto";
import { adoptCorrelationId, principalOf } from "@ctx/rpc";
import type { CommandHandler } from "../handling/command-handler.ts";
import * as to from "./to-command.ts";

interface CommonFields {
  readonly storyId: string;
  readonly expectedVersion?: number | undefined;
  readonly commandId?: string | undefined;
}

/** context.v1.ContextCommandService over the command handler. Requests arrive validated. */
export function registerCommandService(router: ConnectRouter, handler: CommandHandler): void {
  async function run(req: CommonFields, commands: readonly Command[], ctx: HandlerContext) {
    // A call without a correlation id of its own is correlated by its command id: the events then
    // need not store it twice (envelope version 2 leaves out a correlation id that is the command id).
    const commandId = req.commandId || uuidv7();
    const { correlationId, causationId } = adoptCorrelationId(ctx, commandId);
    const result = await handler.handle({
      storyId: storyId(req.storyId),
      name: ctx.method.name,
      commands,
      ...(req.expectedVersion !== undefined ? { expectedVersion: req.expectedVersion } : {}),
      commandId,
      correlationId,
      causationId,
      principal: principalOf(ctx)?.id ?? "",
      signal: ctx.signal,
    });
    return {
      result: create(CommandResultSchema, {
        version: result.version,
        eventIds: [...result.eventIds],
        deduplicated: result.deduplicated,
      }),
    };
  }

  router.service(ContextCommandService, {
    createContext: (req, ctx) => run(req, [to.createContext(req)], ctx),
    addDecision: (req, ctx) => run(req, [to.addDecision(req)], ctx),
    supersedeDecision: (req, ctx) => run(req, [to.supersedeDecision(req)], ctx),
    addSubtask: (req, ctx) => run(req, [to.addSubtask(req)], ctx),
    updateSubtask: (req, ctx) => run(req, [to.updateSubtask(req)], ctx),
    addSubtaskDependency: (req, ctx) => run(req, [to.addSubtaskDependency(req)], ctx),
    archiveContext: (req, ctx) => run(req, [to.archiveContext(req)], ctx),
    applyChanges: (req, ctx) => run(req, req.changes.map(to.changeToCommand), ctx),
  });
}
