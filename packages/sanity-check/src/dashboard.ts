// `pnpm dashboard [runs-dir] [--serve] [--port N]`: writes runs-dir/dashboard.html, plots of every run's
// metrics (the project's stand-in for the tutorial's wandb); --serve also serves it on this machine only.
import path from "node:path";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { startServer } from "./serve.ts";
import { writeDashboard } from "./dashboard_html.ts";

// pnpm runs the script from the repository root; the runs folder on the command line is the user's
const cwd = process.env.INIT_CWD ?? process.cwd();

const argv = hideBin(process.argv);
if (argv[0] === "--") argv.shift();
const args = yargs(argv)
  .scriptName("dashboard")
  .usage(
    "$0 [runs-dir] [--serve] [--port N]\n\nPlots the metrics of every run under runs-dir (default: runs).",
  )
  .command("$0 [runs_dir]", false, (y) =>
    y.positional("runs_dir", { type: "string", default: "runs", describe: "a train script's --runs_dir" }),
  )
  .options({
    serve: {
      type: "boolean",
      default: false,
      describe: "serve the page on 127.0.0.1, refreshed as runs grow",
    },
    port: { type: "number", default: 8050, describe: "port for --serve (0: any free one)" },
  })
  .check((a) => {
    if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535)
      throw new Error(`--port must be 0..65535, got ${a.port}`);
    return true;
  })
  .strict()
  .version(false)
  .help()
  .parseSync();

// the positional from .command() is typed unknown; its default makes it a string
const runsDir = path.resolve(cwd, String(args.runs_dir));
try {
  const { file, runs } = writeDashboard(runsDir);
  console.log(`wrote ${file} (${runs} run${runs === 1 ? "" : "s"})`);
} catch (err) {
  console.error((err as Error).message);
  process.exit(1);
}
if (args.serve) {
  const { url } = await startServer(runsDir, args.port);
  console.log(`serving ${url} (Ctrl-C to stop)`);
}
