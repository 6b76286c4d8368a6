// Keeps the ranks' output lines whole on the launcher's terminal.
//
// How OpenMPI forwards output: each rank's stdout and stderr go to mpirun (through a pty or
// pipe), which reads them in chunks of up to 4 KB and writes each chunk out as it comes.
// A chunk can end in the middle of a line, and the next chunk written may be another
// rank's, so even ranks that write whole lines can see them cut in two under load (seen
// here with 4 ranks printing 120-character lines). No mpirun option buffers by line.
//
// What mpirun can do is tag: with --tag-output it starts every chunk and every line with
// "[job,rank]<stdout>:". That is enough to sort the bytes back per rank, so the launcher
// runs mpirun with --tag-output and passes its output through this relay, which removes
// the tags and writes only complete lines.

// A tag; group 1 is the rank.
const TAG = /\[\d+,(\d+)\]<std(?:out|err|diag)>:/g;
const TAG_AT_START = /^\[\d+,\d+\]<std(?:out|err|diag)>:/;
// Longer than any tag, so a shorter tail that starts with "[" may be a tag cut in two.
const MAX_TAG_LENGTH = 40;

export class LineRelay {
  readonly #write: (text: Buffer) => void;
  /** Text held back because it may end with the start of a tag. */
  #held = "";
  /** Whose text comes next: a rank, or null for mpirun's own messages (never tagged). */
  #rank: number | null = null;
  /** Each rank's line so far, until its newline arrives. */
  readonly #partial = new Map<number | null, string>();

  /** `write` receives whole lines of the ranks' output, tags removed. */
  constructor(write: (text: Buffer) => void) {
    this.#write = write;
  }

  /** Takes the next chunk of mpirun's output. */
  push(chunk: Buffer): void {
    // latin1 maps bytes to characters one to one: UTF-8 cut between chunks survives.
    let text = this.#held + chunk.toString("latin1");
    const lastBracket = text.lastIndexOf("[");
    const tail = text.slice(lastBracket);
    if (
      lastBracket >= 0 &&
      tail.length < MAX_TAG_LENGTH &&
      !tail.includes("\n") &&
      !TAG_AT_START.test(tail)
    ) {
      this.#held = tail;
      text = text.slice(0, lastBracket);
    } else {
      this.#held = "";
    }

    const lines: string[] = [];
    let start = 0;
    for (const match of text.matchAll(TAG)) {
      this.#take(text.slice(start, match.index), lines);
      this.#rank = Number(match[1]);
      start = match.index + match[0].length;
    }
    this.#take(text.slice(start), lines);
    if (lines.length > 0) this.#write(Buffer.from(lines.join(""), "latin1"));
  }

  /** Call when mpirun's output has ended: passes on what is left, whole or not. */
  end(): void {
    const lines: string[] = [];
    this.#take(this.#held, lines);
    this.#held = "";
    for (const rest of this.#partial.values()) lines.push(rest);
    this.#partial.clear();
    const text = lines.join("");
    if (text.length > 0) this.#write(Buffer.from(text, "latin1"));
  }

  /** Adds text of the current rank; complete lines go to `lines`. */
  #take(text: string, lines: string[]): void {
    while (text.length > 0) {
      const newline = text.indexOf("\n");
      const sofar = this.#partial.get(this.#rank) ?? "";
      if (newline < 0) {
        this.#partial.set(this.#rank, sofar + text);
        return;
      }
      lines.push(sofar + text.slice(0, newline + 1));
      this.#partial.delete(this.#rank);
      text = text.slice(newline + 1);
      // mpirun tags the start of every line it forwards, so untagged text after a newline
      // is mpirun's own (its error messages).
      this.#rank = null;
    }
  }
}
