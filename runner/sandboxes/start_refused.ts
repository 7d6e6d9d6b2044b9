/**
 * Why a sandbox must not start, for a reason that starting again cannot mend: a link out of its
 * plugins' files, a plugin package whose dependencies are not installed, sandbox code that changed
 * on disk under the running runner. The supervisor treats it as a refusal, not a crash: one log
 * line per distinct reason, the plugins answer by their failure policy at once, and the start is
 * tried again after a while (the operator may have fixed it) instead of in a crash loop.
 *
 * @module
 */

/** A sandbox start refused for a reason that a restart cannot mend. */
export class StartRefused extends Error {
  override name = "StartRefused";
}
