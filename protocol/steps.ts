/**
 * Work that grows with its input, written as a generator that yields between pieces, so that the
 * runner can spread a large plugin reply over several turns of its event loop (see
 * `runner/sandboxes/slicer.ts`) while small ones run to the end at once.
 *
 * @module
 */

/**
 * Work that grows with the input, as a generator that yields between pieces (every
 * {@linkcode STEP_ENTRIES} entries), so a caller can spread it over turns of the event loop.
 */
export type Steps<T> = Generator<void, T, void>;

/** Entries handled between two yields of {@linkcode Steps}. */
export const STEP_ENTRIES = 256;

/** Runs `steps` to the end at once. */
export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
  }
}
