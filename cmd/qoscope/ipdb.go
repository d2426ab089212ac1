package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/qoscope/qoscope/internal/ipdb"
)

// runIpdb dispatches `qoscope ipdb build|lookup|info`.
func runIpdb(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprint(stderr, `usage: qoscope ipdb <subcommand> [flags]

subcommands:
  build    build a table file from a range file (CSV, ip2region source text or ip2region xdb)
  lookup   look up IP addresses in a table file
  info     describe a table file
`)
	}
	if len(args) == 0 {
		usage()
		return errUsage
	}
	switch args[0] {
	case "build":
		return runIpdbBuild(args[1:], stdout, stderr)
	case "lookup":
		return runIpdbLookup(args[1:], stdout, stderr)
	case "info":
		return runIpdbInfo(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		usage()
		return nil
	}
	usage()
	return fmt.Errorf("unknown ipdb subcommand %q: %w", args[0], errUsage)
}

func runIpdbBuild(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ipdb build", stderr)
	var opts ipdb.BuildOptions
	fs.StringVar(&opts.Input, "in", "", "input range file, in the -format (\"-\" = stdin)")
	csvIn := fs.String("csv", "", "same as -in (the older name)")
	format := fs.String("format", "csv", "input format: csv (start,end,country,province,city,isp), ip2region (its ipv4_source.txt: start|end|country|province|city|isp, the same with |iso last, or the older start|end|country|region|province|city|isp; one layout per file), or xdb (ip2region's IPv4 xdb binary, e.g. ip2region_v4.xdb)")
	fs.StringVar(&opts.Output, "out", "", "table file to write")
	fs.StringVar(&opts.Source, "source", "", "description of the data stored in the file (default: the range file's name)")
	fs.BoolVar(&opts.Uncompressed, "uncompressed", false, "write the raw 32 MiB array (memory-mapped on load) instead of zstd")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("ipdb build: unexpected arguments %q: %w", fs.Args(), errUsage)
	}
	if *csvIn != "" {
		if opts.Input != "" {
			return fmt.Errorf("ipdb build: give the input with -in or -csv, not both: %w", errUsage)
		}
		opts.Input = *csvIn
	}
	var err error
	if opts.Format, err = ipdb.ParseFormat(*format); err != nil {
		return fmt.Errorf("ipdb build: -format: %w", err)
	}
	st, err := ipdb.BuildFile(opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d ranges (%d unknown), %d /24 blocks known (%d split, majority rule), %d codes, %d countries\n",
		opts.Output, st.Ranges, st.UnknownRanges, st.Blocks, st.PartialBlocks, st.Codes, st.Countries)
	if st.OtherISP+st.CoarsenedCity+st.CoarsenedDetail+st.CoarsenedCountry > 0 {
		fmt.Fprintf(stdout, "coarsened rows: %d carriers coded \"other\", %d cities beyond 31 per province, %d foreign details beyond 127 per country, %d countries beyond 250\n",
			st.OtherISP, st.CoarsenedCity, st.CoarsenedDetail, st.CoarsenedCountry)
	}
	return nil
}

// openTable opens path, or the shipped synthetic table when path is empty.
func openTable(path string, stderr io.Writer) (*ipdb.Table, error) {
	if path == "" {
		fmt.Fprintln(stderr, "note: no -db given, using the built-in SYNTHETIC demo table (not real allocations)")
		return ipdb.Default()
	}
	return ipdb.Open(path)
}

func runIpdbLookup(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ipdb lookup", stderr)
	db := fs.String("db", "", "table file (default: the built-in synthetic demo table)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("ipdb lookup: give one or more IP addresses: %w", errUsage)
	}
	ips := make([]netip.Addr, fs.NArg())
	for i, a := range fs.Args() {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("ipdb lookup: argument %d: %q is not an IP address", i+1, a)
		}
		ips[i] = ip
	}
	t, err := openTable(*db, stderr)
	if err != nil {
		return err
	}
	defer t.Close()
	for i, ip := range ips {
		loc, ok := t.Lookup(ip)
		if !ok {
			fmt.Fprintf(stdout, "%s\tnot found\n", fs.Arg(i))
			continue
		}
		fmt.Fprintf(stdout, "%s\tcountry=%s province=%s city=%s isp=%s code=%#04x\n",
			fs.Arg(i), loc.Country, loc.Province, quoteIfSpace(loc.City), quoteIfSpace(loc.ISP), uint16(t.Code(ip)))
	}
	return nil
}

func quoteIfSpace(s string) string {
	if strings.ContainsAny(s, " \t\"") {
		return fmt.Sprintf("%q", s)
	}
	return s
}

func runIpdbInfo(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ipdb info", stderr)
	db := fs.String("db", "", "table file (default: the built-in synthetic demo table)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	t, err := openTable(*db, stderr)
	if err != nil {
		return err
	}
	defer t.Close()
	var blocks uint64
	rs := t.Ranges()
	for _, r := range rs {
		b := r.Last.As4()
		f := r.First.As4()
		blocks += uint64(int(b[0])<<16|int(b[1])<<8|int(b[2])) - uint64(int(f[0])<<16|int(f[1])<<8|int(f[2])) + 1
	}
	countries := map[string]bool{}
	for _, l := range t.Locations() {
		countries[l.Country] = true
	}
	fmt.Fprintf(stdout, "source: %s\ncodes: %d\ncountries: %d\nknown /24 blocks: %d of %d in %d runs\n",
		t.Source(), len(t.Locations()), len(countries), blocks, ipdb.Blocks, len(rs))
	return nil
}
