import ipaddr from "ipaddr.js";

/** A set of CIDR ranges that answers "is this address inside?" (IPv4-mapped IPv6 counts as IPv4). */
export class CidrSet {
  readonly #ranges: [ipaddr.IPv4 | ipaddr.IPv6, number][];

  /** Ranges like `10.0.0.0/8` or `::1/128`; invalid ones throw (the config validated them). */
  constructor(cidrs: readonly string[]) {
    this.#ranges = cidrs.map((cidr) => {
      const [address, bits] = cidr.includes("/")
        ? ipaddr.parseCIDR(cidr)
        : [ipaddr.parse(cidr), cidr.includes(":") ? 128 : 32];
      // A mapped range (::ffff:10.0.0.0/104) becomes its IPv4 range (10.0.0.0/8).
      const mapped = address.kind() === "ipv6" &&
        (address as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96;
      return mapped ? [normalize(address), bits - 96] : [address, bits];
    });
  }

  /** True when the set is empty. */
  get empty(): boolean {
    return this.#ranges.length === 0;
  }

  /** Whether `address` lies in one of the ranges; false for anything that is not an IP. */
  contains(address: string): boolean {
    if (this.#ranges.length === 0) return false;
    let parsed: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      parsed = ipaddr.process(address.trim());
    } catch {
      return false;
    }
    for (const [range, bits] of this.#ranges) {
      if (range.kind() === parsed.kind() && parsed.match(range, bits)) return true;
    }
    return false;
  }
}

function normalize(address: ipaddr.IPv4 | ipaddr.IPv6): ipaddr.IPv4 | ipaddr.IPv6 {
  if (address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
    return (address as ipaddr.IPv6).toIPv4Address();
  }
  return address;
}
