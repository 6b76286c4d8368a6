// Prints the compiler and linker flags of the system's MPI, for binding.gyp.
//
// OpenMPI's compiler wrapper knows where its headers and libraries live: `mpicc --showme`
// prints the command it would run, e.g.
//   gcc -I/usr/lib/x86_64-linux-gnu/openmpi/include -L/usr/lib/x86_64-linux-gnu/openmpi/lib -lmpi
// binding.gyp calls this script once per list it needs: `node scripts/mpi-flags.mjs include_dirs`.
import { execFileSync } from "node:child_process";
import { pathToFileURL } from "node:url";

/** Splits `mpicc --showme` into the lists binding.gyp wants. */
export function mpiFlags() {
  const words = execFileSync("mpicc", ["--showme"], { encoding: "utf8" }).trim().split(/\s+/).slice(1);
  const flags = { include_dirs: [], libraries: [], ldflags: [], cflags: [] };
  for (const word of words) {
    if (word.startsWith("-I")) flags.include_dirs.push(word.slice(2));
    else if (word.startsWith("-l")) flags.libraries.push(word);
    else if (word.startsWith("-L")) {
      // -L finds the library at link time; the rpath finds it again at load time when MPI
      // lives outside the loader's default directories (an OpenMPI built into /opt, say).
      flags.ldflags.push(word, `-Wl,-rpath,${word.slice(2)}`);
    } else if (word.startsWith("-Wl,")) flags.ldflags.push(word);
    else flags.cflags.push(word); // -pthread and the like matter to both steps
  }
  flags.ldflags.push(...flags.cflags);
  return flags;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const list = process.argv[2];
  const flags = mpiFlags();
  if (!(list in flags)) throw new Error(`usage: mpi-flags.mjs ${Object.keys(flags).join("|")}`);
  console.log(flags[list].join(" "));
}
