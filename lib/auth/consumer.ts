/**
 * What a consumer id may be: it is forwarded upstream as
 * `X-Vanguard-Consumer`, logged and used in rate-limit buckets, so it must
 * be a header value that cannot break a request head or hide in one: 1 to
 * 256 characters of printable ASCII, spaces only inside (no CR, LF, tab,
 * control or non-ASCII character, which the wire could turn into CR LF).
 */
const CONSUMER_ID = /^[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?$/;

/** Whether `id` may serve as a consumer id (see the module comment). */
export function isConsumerId(id: string): boolean {
  return CONSUMER_ID.test(id);
}

/** Why a consumer id is refused, for messages (never echoes the id itself). */
export const CONSUMER_ID_RULE =
  "must be 1 to 256 printable ASCII characters, with spaces only between others";
