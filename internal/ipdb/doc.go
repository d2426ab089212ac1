// Package ipdb maps client IPv4 addresses to country, province, city and ISP
// through the "C segment" table of the domain notes: 2^24 16-bit codes, one
// per /24, indexed by A·65536 + B·256 + C (32 MiB, one memory access per
// lookup), plus a dictionary from codes to names so lookups return shared
// strings and never allocate.
//
// The code layout is documented on Code; the mapping of China's provincial
// divisions to the four big regions on RegionOf and in docs/ipdb.md. Tables
// are built from range files (FormatCSV, ip2region's source text with
// FormatIP2Region, or ip2region's binary IPv4 xdb with FormatXDB) by a
// Builder, stored zstd-compressed (see Table.Write) and loaded with Load or
// Open. ip2region's Go binding cannot be fetched through the module proxy
// this project uses, so ReadXDB reads the xdb layout that ip2region
// documents (xdb.go); it maps region strings as FormatIP2Region maps rows. Default returns a small SYNTHETIC table for tests
// and the demo; its ranges are in 10.0.0.0/8 and are not real allocations.
//
// The table is IPv4 only: IPv6 addresses are "not found", except IPv4-mapped
// ones (::ffff:a.b.c.d), which are looked up as IPv4. Ranges smaller than a
// /24 cannot be represented; each /24 takes the location that covers most of
// it (see Builder.Build).
package ipdb
