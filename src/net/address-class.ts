/**
 * What kind of address an IP is: the special-purpose ranges of the IANA registries (RFC 6890 and
 * successors) and the cloud metadata endpoints. The most specific range wins.
 */
import { parseIp, parseRange, inRange, type Ip, type IpRange } from './address.js';

export type AddressClass =
  | 'loopback'
  | 'link_local'
  | 'metadata'
  | 'unspecified'
  | 'private'
  | 'cgnat'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'ipv6_embedding'
  | 'public';

const CLASS_TABLE: readonly [string, AddressClass][] = [
  // Cloud metadata / credential endpoints: only an exact allow entry opens them.
  ['169.254.169.254/32', 'metadata'], // AWS, GCP (metadata.google.internal), Azure, OCI, OpenStack, DO…
  ['169.254.170.2/32', 'metadata'], // AWS ECS task metadata / credentials
  ['169.254.170.23/32', 'metadata'], // AWS EKS Pod Identity agent
  ['100.100.100.200/32', 'metadata'], // Alibaba Cloud
  ['168.63.129.16/32', 'metadata'], // Azure WireServer (a public address, host-only service)
  ['fd00:ec2::254/128', 'metadata'], // AWS IMDS over IPv6
  ['fd00:ec2::23/128', 'metadata'], // AWS EKS Pod Identity agent over IPv6

  // IPv4
  ['0.0.0.0/8', 'unspecified'], // "this network"; 0.0.0.0 dials the local host
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'cgnat'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link_local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'], // IETF protocol assignments
  ['192.0.2.0/24', 'reserved'], // TEST-NET-1
  ['192.88.99.0/24', 'reserved'], // deprecated 6to4 relay anycast
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved'], // benchmarking (also "fake-IP" DNS of some VPN clients)
  ['198.51.100.0/24', 'reserved'], // TEST-NET-2
  ['203.0.113.0/24', 'reserved'], // TEST-NET-3
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'], // class E
  ['255.255.255.255/32', 'broadcast'],

  // IPv6 (mapped, compatible and 64:ff9b::/96 never get here: they are checked as IPv4)
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['::ffff:0:0:0/96', 'ipv6_embedding'], // SIIT IPv4-translated
  ['64:ff9b:1::/48', 'ipv6_embedding'], // local-use NAT64 (RFC 8215)
  ['100::/64', 'reserved'], // discard-only
  ['2000::/3', 'public'], // global unicast, minus the blocks below
  ['2001::/23', 'reserved'], // IETF protocol assignments (benchmarking, ORCHID, …)
  ['2001::/32', 'ipv6_embedding'], // Teredo
  ['2001:db8::/32', 'reserved'], // documentation
  ['2002::/16', 'ipv6_embedding'], // 6to4
  ['3fff::/20', 'reserved'], // documentation (RFC 9637)
  ['5f00::/16', 'reserved'], // SRv6 SIDs (RFC 9602)
  ['fc00::/7', 'private'], // unique local
  ['fe80::/10', 'link_local'],
  ['fec0::/10', 'private'], // deprecated site-local
  ['ff00::/8', 'multicast'],
];

interface ClassRange extends IpRange {
  readonly cls: AddressClass;
}

const CLASS_RANGES: readonly ClassRange[] = CLASS_TABLE.map(([cidr, cls]) => {
  const e = parseRange(cidr);
  if (!e.ok) throw new TypeError(e.message);
  return { ...e.range, cls };
}).sort((a, b) => b.prefix - a.prefix);

export function classify(ip: Ip): AddressClass {
  for (const r of CLASS_RANGES) if (inRange(ip, r)) return r.cls;
  return ip.kind() === 'ipv4' ? 'public' : 'reserved'; // IPv6 outside 2000::/3 is not global unicast
}

/** Class of an IP address (any spelling `parseIp` accepts; throws TypeError when not an IP). */
export function classifyAddress(ip: string): AddressClass {
  const parsed = parseIp(ip);
  if (parsed === null) throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
  return classify(parsed);
}

export const CLASS_LABEL: Record<AddressClass, string> = {
  loopback: 'a loopback address',
  link_local: 'a link-local address',
  metadata: 'a cloud metadata address',
  unspecified: 'an unspecified address',
  private: 'a private-network address',
  cgnat: 'a carrier-grade NAT address (100.64.0.0/10)',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
  reserved: 'a reserved (special-purpose, not globally routable) address',
  ipv6_embedding: 'an IPv6 address embedding IPv4 (6to4, Teredo, NAT64/SIIT)',
  public: 'a public address',
};
