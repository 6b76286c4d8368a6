// Prints the compiler and linker flags of the system's OpenBLAS, for binding.gyp.
//
// Debian's libopenblas-dev ships openblas.pc, e.g.
//   -I/usr/include/x86_64-linux-gnu/openblas-pthread/ -L/usr/lib/x86_64-linux-gnu/openblas-pthread/ -lopenblas
// binding.gyp calls this script once per list it needs: `node scripts/blas-flags.mjs include_dirs`.
import { execFileSync } from "node:child_process";
import { pathToFileURL } from "node:url";

/** Splits `pkg-config --cflags --libs openblas` into the lists binding.gyp wants. */
export function blasFlags() {
  const out = execFileSync("pkg-config", ["--cflags", "--libs", "openblas"], { encoding: "utf8" });
  const flags = { include_dirs: [], libraries: [], ldflags: [] };
  for (const word of out.trim().split(/\s+/)) {
    if (word.startsWith("-I")) flags.include_dirs.push(word.slice(2));
    else if (word.startsWith("-l")) flags.libraries.push(word);
    else if (word.startsWith("-L")) {
      // -L finds the library at link time; the rpath finds the same one at load time (Debian installs
      // several BLAS flavours, and the loader's default would pick whichever `alternatives` selects).
      flags.ldflags.push(word, `-Wl,-rpath,${word.slice(2)}`);
    }
  }
  return flags;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const list = process.argv[2];
  const flags = blasFlags();
  if (!(list in flags)) throw new Error(`usage: blas-flags.mjs ${Object.keys(flags).join("|")}`);
  console.log(flags[list].join(" "));
}
