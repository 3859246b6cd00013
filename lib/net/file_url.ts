import { pathToFileURL } from "node:url";

/** A file: URL for an absolute path, for dynamic import. */
export function toFileUrl(path: string): string {
  return pathToFileURL(path).href;
}
