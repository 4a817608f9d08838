import { Command } from "commander";
import { runDemo } from "./demo.ts";

// `bin/ctx` — the operator CLI. Each command prints what it does; errors exit non-zero with a message.
const program = new Command()
  .name("ctx")
  .description("Operate the context service: demo data, and more as the service grows")
  .showHelpAfterError();

program
  .command("demo")
  .description("create a demo story with decisions and subtasks through the command service")
  .option(
    "--command-url <url>",
    "command service address",
    process.env.COMMAND_URL ?? "http://127.0.0.1:50051",
  )
  .option("--story <id>", "story id", "demo-checkout")
  .action(async (options: { commandUrl: string; story: string }) => {
    await runDemo(options.commandUrl, options.story, (line) => console.log(line));
  });

try {
  await program.parseAsync();
} catch (e) {
  console.error(`ctx: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
}
