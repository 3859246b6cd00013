/**
 * The three HTTP/1.1 body framings a proxy's upstream side reads
 * (Content-Length, chunked, until close), over a {@linkcode BufferedReader}.
 */
import { type BufferedReader, isFieldName, isFieldValue, ProtocolError, trimOws } from "./http1.ts";

/** A chunk size: 1 to 15 hex digits, then optional extensions after optional white space. */
const CHUNK_LINE = /^([0-9a-fA-F]{1,15})[\t ]*(?:;[\t\x20-\x7e\x80-\xff]*)?$/;
/** Most bytes of trailer fields accepted after the last chunk. */
const MAX_TRAILER_BYTES = 16 * 1024;

/** The size of one chunk from its size line, or ProtocolError (RFC 9112 7.1). */
export function chunkSize(line: string): number {
  const match = CHUNK_LINE.exec(line);
  if (match === null) throw new ProtocolError("Upstream sent an invalid chunk size");
  const size = parseInt(match[1], 16);
  if (!Number.isSafeInteger(size)) throw new ProtocolError("Upstream sent an invalid chunk size");
  return size;
}

/**
 * Reads one chunked body, yielding data as it arrives; throws ProtocolError
 * when the stream ends before the last chunk or breaks the framing. Lines
 * end in CRLF only; trailers are read, checked and dropped.
 */
export async function* chunkedBody(reader: BufferedReader): AsyncGenerator<Uint8Array> {
  for (;;) {
    const size = chunkSize(await reader.readLine(4096));
    if (size === 0) {
      let trailerBytes = 0;
      for (;;) {
        const line = await reader.readLine(MAX_TRAILER_BYTES);
        if (line === "") return;
        trailerBytes += line.length + 2;
        const colon = line.indexOf(":");
        if (
          trailerBytes > MAX_TRAILER_BYTES || colon <= 0 ||
          !isFieldName(line.slice(0, colon)) || !isFieldValue(trimOws(line.slice(colon + 1)))
        ) {
          throw new ProtocolError("Upstream sent an invalid trailer");
        }
      }
    }
    yield* fixedBody(reader, size);
    if ((await reader.readLine(2)) !== "") throw new ProtocolError("Chunk data too long");
  }
}

/** Reads exactly `length` bytes of body. */
export async function* fixedBody(
  reader: BufferedReader,
  length: number,
): AsyncGenerator<Uint8Array> {
  let left = length;
  while (left > 0) {
    const data = await reader.take(left);
    if (data === null) {
      throw new ProtocolError("Upstream connection closed before the response body ended");
    }
    left -= data.byteLength;
    yield data;
  }
}

/** Reads until the peer closes. */
export async function* untilClose(reader: BufferedReader): AsyncGenerator<Uint8Array> {
  for (;;) {
    const data = await reader.take(64 * 1024);
    if (data === null) return;
    yield data;
  }
}
