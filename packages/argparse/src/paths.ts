// Output folders are checked before any work starts: a run that trains for an hour and then cannot write
// its checkpoint has lost the hour.
import fs from "node:fs";
import path from "node:path";
import { UsageError } from "./index.ts";

/**
 * Makes sure `dir` is (or can become) a writable folder: creates it, writes and removes a probe file.
 * Throws a UsageError naming the flag and the path: a file in the way, a read-only disk, no permission.
 */
export function ensureWritableDir(flag: string, dir: string): void {
  const where = `${flag} ${dir}`;
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory())
    throw new UsageError(`${where}: is a file, not a folder`);
  try {
    // a recursive mkdir on a read-only disk says ENOENT: ask the nearest folder that exists instead
    let existing = path.resolve(dir);
    while (!fs.existsSync(existing)) existing = path.dirname(existing);
    if (!fs.statSync(existing).isDirectory())
      throw Object.assign(new Error("not a folder"), { code: "ENOTDIR" });
    fs.accessSync(existing, fs.constants.W_OK);
    fs.mkdirSync(dir, { recursive: true });
    const probe = path.join(dir, `.write-test-${process.pid}`);
    fs.writeFileSync(probe, "");
    fs.rmSync(probe);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === "EROFS"
        ? "read-only file system"
        : e.code === "EACCES" || e.code === "EPERM"
          ? "permission denied"
          : e.code === "ENOTDIR"
            ? "a file is in the way on its path"
            : e.code === "ENOSPC"
              ? "no space left on the device"
              : e.message;
    throw new UsageError(`${where}: not writable (${why})`);
  }
}
