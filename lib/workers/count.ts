/** How many proxy worker threads `server.workers` asks for. */

/**
 * The number of threads `setting` means: the number itself, or for `auto`
 * one per core (`navigator.hardwareConcurrency`). 1 means no worker thread:
 * the main thread serves, as it always did.
 */
export function workerCount(
  setting: number | "auto",
  cores: number = navigator.hardwareConcurrency,
): number {
  if (setting === "auto") return Math.max(1, Math.floor(cores) || 1);
  return setting;
}
