import { describe, expect, it } from "vitest";
import {
  CommandLimit,
  CommandTooLargeError,
  DomainError,
  DomainRule,
  EntityAlreadyExistsError,
  EntityNotFoundError,
  isCommandTooLargeError,
  isDomainError,
  isEntityAlreadyExistsError,
  isEntityNotFoundError,
  isRuleViolationError,
  isStoryAlreadyExistsError,
  isStoryLimitError,
  isStoryNotFoundError,
  RuleViolationError,
  StoryAlreadyExistsError,
  StoryLimitError,
  StoryNotFoundError,
  storyId,
} from "./index.ts";

const story = storyId("s-1");
const cause = new Error("root");

const cases = [
  {
    error: new StoryNotFoundError(story, { cause }),
    name: "StoryNotFoundError",
    guard: isStoryNotFoundError,
    message: 'story "s-1" does not exist',
  },
  {
    error: new StoryAlreadyExistsError(story, { cause }),
    name: "StoryAlreadyExistsError",
    guard: isStoryAlreadyExistsError,
    message: 'story "s-1" already exists',
  },
  {
    error: new EntityNotFoundError(story, "subtask", "a", { cause }),
    name: "EntityNotFoundError",
    guard: isEntityNotFoundError,
    message: 'subtask "a" does not exist in story "s-1"',
  },
  {
    error: new EntityAlreadyExistsError(story, "decision", "d1", { cause }),
    name: "EntityAlreadyExistsError",
    guard: isEntityAlreadyExistsError,
    message: 'decision "d1" already exists in story "s-1"',
  },
  {
    error: new RuleViolationError(story, DomainRule.DependencyCycle, "cycle", { cause }),
    name: "RuleViolationError",
    guard: isRuleViolationError,
    message: "cycle",
  },
  {
    error: new CommandTooLargeError(story, CommandLimit.Changes, 101, 100, undefined, { cause }),
    name: "CommandTooLargeError",
    guard: isCommandTooLargeError,
    message: "a command may carry at most 100 changes, not 101",
  },
] as const;

describe("domain errors", () => {
  it.each(cases)("$name sets its name and message, keeps story and cause", (c) => {
    expect(c.error.name).toBe(c.name);
    expect(c.error.message).toBe(c.message);
    expect(c.error.storyId).toBe("s-1");
    expect(c.error.cause).toBe(cause);
    expect(c.error).toBeInstanceOf(DomainError);
    expect(c.error).toBeInstanceOf(Error);
    expect(String(c.error)).toBe(`${c.name}: ${c.message}`);
  });

  it.each(cases)("isX recognises $name and nothing else", (c) => {
    for (const other of cases) {
      expect(c.guard(other.error)).toBe(other === c);
    }
    expect(isDomainError(c.error)).toBe(true);
  });

  it("guards reject what is not a domain error", () => {
    for (const value of [new Error("x"), "story not found", undefined, { name: "DomainError" }]) {
      expect(isDomainError(value)).toBe(false);
      for (const c of cases) {
        expect(c.guard(value)).toBe(false);
      }
    }
  });

  it("carries the fields the RPC edge maps", () => {
    const notFound = new EntityNotFoundError(story, "decision", "d9");
    expect([notFound.entity, notFound.id]).toEqual(["decision", "d9"]);
    const taken = new EntityAlreadyExistsError(story, "subtask", "a");
    expect([taken.entity, taken.id]).toEqual(["subtask", "a"]);
    expect(new RuleViolationError(story, DomainRule.StoryArchived, "x").rule).toBe(
      "story_archived",
    );
  });

  it("says which limit a story would pass, as a rule violation with its rule id", () => {
    const error = new StoryLimitError(story, DomainRule.TooManySubtasks, "subtasks", 3, 2, {
      cause,
    });
    expect(error.name).toBe("StoryLimitError");
    expect(error.message).toBe('story "s-1" would hold 3 subtasks; a story may hold at most 2');
    expect([error.rule, error.value, error.limit, error.cause]).toEqual([
      "too_many_subtasks",
      3,
      2,
      cause,
    ]);
    expect(isStoryLimitError(error) && isRuleViolationError(error)).toBe(true);
    expect(cases.some((c) => isStoryLimitError(c.error))).toBe(false);
  });

  it("says which change of a command is too large", () => {
    const error = new CommandTooLargeError(story, CommandLimit.EventBytes, 70_000, 65_536, {
      index: 2,
      type: "AddDecision",
    });
    expect(error.message).toBe(
      "change 2 (AddDecision) would be an event of 70000 bytes; an event may have at most 65536",
    );
    expect([error.limit, error.value, error.max, error.change]).toEqual([
      "event_bytes",
      70_000,
      65_536,
      2,
    ]);
  });

  it("names every rule with a stable snake_case id", () => {
    for (const rule of Object.values(DomainRule)) {
      expect(rule).toMatch(/^[a-z]+(_[a-z]+)*$/);
    }
    expect(Object.values(DomainRule)).toEqual(
      expect.arrayContaining([
        "story_archived",
        "unknown_reference",
        "dependency_cycle",
        "decision_not_active",
        "invalid_status_transition",
        "dependencies_not_done",
        "self_reference",
        "duplicate_dependency",
      ]),
    );
  });
});
