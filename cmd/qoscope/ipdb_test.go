package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIpdbBuildLookup(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "r.csv")
	db := filepath.Join(dir, "r.ipdb")
	if err := os.WriteFile(csv, []byte("start,end,country,province,city,isp\n1.0.1.0,1.0.3.255,cn,广东省,guangzhou,电信\n8.8.8.0,8.8.8.255,us,,,google\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := runIpdb(context.Background(), []string{"build", "-csv", csv, "-out", db}, &out, &errb); err != nil {
		t.Fatalf("build: %v (%s)", err, errb.String())
	}
	if !strings.Contains(out.String(), "2 ranges (0 unknown), 4 /24 blocks known (0 split, majority rule), 2 codes, 2 countries") {
		t.Errorf("build output: %s", out.String())
	}
	out.Reset()
	if err := runIpdb(context.Background(), []string{"lookup", "-db", db, "1.0.2.3", "8.8.8.8", "9.9.9.9", "::ffff:1.0.1.1"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	want := "1.0.2.3\tcountry=cn province=guangdong city=guangzhou isp=telecom code=0xc821\n" +
		"8.8.8.8\tcountry=us province= city= isp=google code=0x0281\n" +
		"9.9.9.9\tnot found\n" +
		"::ffff:1.0.1.1\tcountry=cn province=guangdong city=guangzhou isp=telecom code=0xc821\n"
	if out.String() != want {
		t.Errorf("lookup output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestIpdbErrors(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(csv, []byte("1.0.0.0,1.0.0.255,cn,beijing,,\n1.0.0.0,1.0.0.9,cn,hebei,,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	err := runIpdb(context.Background(), []string{"build", "-csv", csv, "-out", filepath.Join(dir, "x")}, &out, &errb)
	if err == nil || err.Error() != csv+": line 2: range 1.0.0.0-1.0.0.9 overlaps line 1 (1.0.0.0-1.0.0.255)" {
		t.Errorf("overlap: %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, "x")); !os.IsNotExist(statErr) {
		t.Error("a failed build left an output file")
	}
	if err := runIpdb(context.Background(), []string{"lookup", "-db", csv, "1.2.3.4"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "bad magic") {
		t.Errorf("lookup in a csv: %v", err)
	}
	if err := runIpdb(context.Background(), []string{"lookup", "nonsense"}, &out, &errb); err == nil || !strings.Contains(err.Error(), `argument 1: "nonsense" is not an IP address`) {
		t.Errorf("bad argument: %v", err)
	}
	if err := runIpdb(context.Background(), []string{"frob"}, &out, &errb); !errors.Is(err, errUsage) {
		t.Errorf("unknown subcommand: %v", err)
	}
	if err := runIpdb(context.Background(), []string{"build", "-csv", csv, "-out", "x", "-format", "mmdb"}, &out, &errb); err == nil || !strings.Contains(err.Error(), `-format: unknown format "mmdb" (want csv, ip2region or xdb)`) {
		t.Errorf("bad format: %v", err)
	}
	// -format xdb reaches the xdb reader (which internal/ipdb tests in full).
	if err := runIpdb(context.Background(), []string{"build", "-in", csv, "-out", filepath.Join(dir, "x"), "-format", "xdb"}, &out, &errb); err == nil || err.Error() != csv+": xdb is 58 bytes, shorter than its 256-byte header" {
		t.Errorf("a csv read as xdb: %v", err)
	}
	if err := runIpdb(context.Background(), []string{"build", "-in", csv, "-csv", csv, "-out", "x"}, &out, &errb); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "not both") {
		t.Errorf("-in and -csv: %v", err)
	}
}

func TestIpdbLookupDefault(t *testing.T) {
	var out, errb bytes.Buffer
	if err := runIpdb(context.Background(), []string{"lookup", "10.19.0.1"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errb.String(), "SYNTHETIC") || !strings.HasPrefix(out.String(), "10.19.0.1\tcountry=cn province=guangdong city=guangzhou isp=telecom") {
		t.Errorf("stdout %q stderr %q", out.String(), errb.String())
	}
}
