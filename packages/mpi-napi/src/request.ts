// Non-blocking operations: isend, irecv and iallreduce return a Request right away, and the
// data is only there (or the buffer free to reuse) once wait() returned or test() said true.
import { native, type NativeRequest } from "./binding.ts";

export class Request {
  // A private field doubles as a brand: only objects made by this class have it, so a
  // look-alike object passed to waitAll is caught here instead of reaching C++.
  readonly #native: NativeRequest;

  /** Made by Comm's non-blocking methods; not meant to be called directly. */
  constructor(nativeRequest: NativeRequest) {
    this.#native = nativeRequest;
  }

  /** Blocks until the operation completes. A TypeError if called a second time. */
  wait(): void {
    this.#native.wait();
  }

  /** Checks without blocking; true once complete (MPI needs these calls to make progress). */
  test(): boolean {
    return this.#native.test();
  }

  /** Whether the operation has completed (as seen by the last wait() or test()). */
  get done(): boolean {
    return this.#native.done;
  }

  /** See waitAll below (a static method, because only the class can read #native). */
  static waitAll(requests: readonly Request[]): void {
    if (!Array.isArray(requests)) throw new TypeError("waitAll expects an array of requests");
    native.waitAll(
      requests.map((request, i) => {
        if (!(typeof request === "object" && request !== null && #native in request)) {
          throw new TypeError(`waitAll: item ${i} is not a Request`);
        }
        return request.#native;
      }),
    );
  }
}

/** Waits for all the requests at once (MPI_Waitall); each counts as waited for. */
export function waitAll(requests: readonly Request[]): void {
  Request.waitAll(requests);
}
