/**
 * The Redis Cluster hash slot of a key, as Redis computes it: CRC16 (XMODEM)
 * of the key's UTF-8 bytes modulo 16384, or of its hash tag (the text between
 * the first `{` and the first `}` after it, when not empty) if it has one.
 * The limiter needs it to keep each script call's keys in one slot and to
 * send each call to the node that owns the slot.
 *
 * @module
 */

/** The number of hash slots of a Redis Cluster. */
export const SLOT_COUNT = 16384;

const TABLE = crcTable();

function crcTable(): Uint16Array {
  const table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte << 8;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
    }
    table[byte] = crc & 0xffff;
  }
  return table;
}

/** CRC16/XMODEM (polynomial 0x1021, initial 0) of `bytes`, Redis's `crc16()`. */
export function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) {
    crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]) & 0xff];
  }
  return crc;
}

/**
 * The hash slot (0 to 16383) of `key`.
 *
 * @example
 * ```ts
 * keySlot("123456789"); // 12739 (0x31C3, the CRC16/XMODEM check value)
 * keySlot("vanguard:rl:{orders:abc}") === keySlot("{orders:abc}"); // true: same hash tag
 * ```
 */
export function keySlot(key: string): number {
  const open = key.indexOf("{");
  if (open !== -1) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(utf8(key)) % SLOT_COUNT;
}

const encoder = new TextEncoder();

function utf8(text: string): Uint8Array {
  // Vanguard's keys are ASCII; skip the encoder for them.
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) return encoder.encode(text);
    bytes[i] = code;
  }
  return bytes;
}
