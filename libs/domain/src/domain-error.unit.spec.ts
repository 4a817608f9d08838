import { describe, expect, it } from "vitest";
import {
  DomainError,
  DomainRule,
  EntityAlreadyExistsError,
  EntityNotFoundError,
  isDomainError,
  isEntityAlreadyExistsError,
  isEntityNotFoundError,
  isRuleViolationError,
  isStoryAlreadyExistsError,
  isStoryNotFoundError,
  RuleViolationError,
  StoryAlreadyExistsError,
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
