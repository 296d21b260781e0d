# Frames for the test of the later fragments of GRE that is not ours (tunnels/decapsulation.rs),
# as a tunnel's router sends them (dataplane/tests/data/tunnel-edge.toml: acme's routers
# 198.51.100.1 and 2001:db8:beef::1, to the anycast addresses). Over IPv4: a datagram of ours
# begun, then 64 datagrams of GRE that is not ours, each in three fragments (transparent
# Ethernet bridging, 0x6558, as Open vSwitch sends by default, and PPTP's version 1, in turn),
# then the rest of ours; then one not ours whose second fragment comes before its first, and
# one of ours under the identity of the first refused. Over IPv6 the same, two of the datagrams
# not ours and one of ours behind destination options in the fragmentable part (RFC 8200
# section 4.5: every later fragment's header names them, not GRE). Ours carry UDP to port 53,
# the others to port 9. scapy builds them; the test reads them with tshark.
E = lambda: Ether(dst='02:00:00:00:00:01')
R4, A4, R6, A6 = '198.51.100.1', '192.0.2.1', '2001:db8:beef::1', '2001:db8:ffff::1'
def inner(n, port):
    return IP(src='203.0.113.10', dst='198.18.0.10', id=n)/UDP(sport=5000, dport=port)/Raw(bytes([n % 256]) * 300)
def ours(n): return GRE()/inner(n, 53)
def not_ours(n):
    if n % 2: return GRE(version=1, proto=0x880b, key_present=1, key=n)/inner(n, 9)
    return GRE(proto=0x6558)/Ether(src='02:00:00:00:00:99', dst='02:00:00:00:00:98')/inner(n, 9)
def v4(n, gre): return [E()/f for f in fragment(IP(src=R4, dst=A4, id=n)/gre, fragsize=120)]
def v6(n, gre, options=False):
    p = IPv6(src=R6, dst=A6)/IPv6ExtHdrFragment(id=n)
    if options: p = p/IPv6ExtHdrDestOpt()
    return [E()/f for f in fragment6(p/gre, 184)]
first4 = v4(1000, ours(1000))
frames = first4[:1]
for n in range(2000, 2064):
    frames += v4(n, not_ours(n))
frames += first4[1:]
late = v4(2100, not_ours(2100))
frames += [late[1], late[0], late[2]]
frames += v4(2000, ours(2000))
first6 = v6(3000, ours(3000))
frames += first6[:1]
for n in range(4000, 4016):
    frames += v6(n, not_ours(n), options=n % 4 == 0)
frames += first6[1:]
frames += v6(3001, ours(3001), options=True)
