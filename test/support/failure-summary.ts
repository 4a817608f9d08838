import { relative } from "node:path";
import { stripVTControlCharacters } from "node:util";
import type { Reporter, TestModule } from "vitest/node";

/**
 * A reporter that ends the run with one plain block per failure: the file, the test and the first
 * lines of each error, without colours or code frames. CI keeps only the tail of a run's output;
 * with the default reporter alone that tail is the last failure's code frame, not what failed.
 */
export class FailureSummary implements Reporter {
  readonly #root: string;
  readonly #linesPerError: number;

  constructor(root = process.cwd(), linesPerError = 6) {
    this.#root = root;
    this.#linesPerError = linesPerError;
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandled: ReadonlyArray<unknown>): void {
    const blocks: string[] = [];
    for (const module of modules) {
      const file = relative(this.#root, module.moduleId);
      for (const error of module.errors()) blocks.push(this.#block(`${file} (file)`, error));
      for (const test of module.children.allTests()) {
        const result = test.result();
        if (result.state !== "failed") continue;
        for (const error of result.errors ?? [])
          blocks.push(this.#block(`${file} > ${test.fullName}`, error));
      }
    }
    for (const error of unhandled) blocks.push(this.#block("unhandled error", error));
    if (blocks.length === 0) return;
    process.stdout.write(`\nFailures (${blocks.length}):\n${blocks.join("\n")}\n`);
  }

  #block(where: string, error: unknown): string {
    const text = stripVTControlCharacters(describe(error))
      .split("\n")
      .map((line) => line.trimEnd())
      .filter((line) => line !== "")
      .slice(0, this.#linesPerError);
    return [`- ${where}`, ...text.map((line) => `    ${line}`)].join("\n");
  }
}

function describe(error: unknown): string {
  if (typeof error === "object" && error !== null) {
    const { name, message } = error as { name?: unknown; message?: unknown };
    if (typeof message === "string")
      return typeof name === "string" && name !== "" ? `${name}: ${message}` : message;
  }
  return String(error);
}
