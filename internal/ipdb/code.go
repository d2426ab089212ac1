package ipdb

// Code is the 16-bit location code stored for each /24.
//
// Domestic (mainland China, province known), bit 15 = 1:
//
//	15     14-13   12-10      9-8   7-5   4-3     2-0
//	1      region  province   area  city  county  isp
//
// region and province come from the shipped geography (Provinces, RegionOf),
// isp from ISPNames. area+city number the cities of a province, 1..31 (0 is
// "city unknown"), assigned per table file by size; county is reserved (0)
// because the CSV has no county column.
//
// Other (bit 15 = 0): foreign countries, Hong Kong, Macau, Taiwan, and
// mainland ranges whose province is unknown:
//
//	15  14-7     6-0
//	0   domain   locality
//
// domain 0 with locality 0 (code 0) means "not in the table". Domains 1..4
// are fixed (cn without province, hongkong, macau, taiwan); 5..254 are
// countries ranked by size in the table file; 255 collects countries beyond
// that. locality 1..127 numbers the (province, city, isp) tuples of a domain,
// ranked by size; 0 is the domain alone.
type Code uint16

// Masks select the parts of a code. For a domestic code, code&MaskProvince
// identifies the province, code&MaskCity the city, and so on; for any code,
// code&MaskCountry identifies the country-level domain.
const (
	MaskDomestic Code = 0x8000
	MaskRegion   Code = 0xE000
	MaskProvince Code = 0xFC00
	MaskArea     Code = 0xFF00
	MaskCity     Code = 0xFFE0
	MaskCounty   Code = 0xFFF8
	MaskISP      Code = 0x0007 // domestic codes only
	MaskCountry  Code = 0xFF80 // domain of a non-domestic code; 0x8000 for domestic ones
	MaskLocality Code = 0x007F // non-domestic codes only
)

// Domestic reports whether c is a mainland code with a known province.
func (c Code) Domestic() bool { return c&MaskDomestic != 0 }

// Region returns the big region number (RegionNorth..RegionWest) of a
// domestic code, -1 otherwise.
func (c Code) Region() int {
	if !c.Domestic() {
		return -1
	}
	return int(c>>13) & 3
}

// ISP returns the ISP number of a domestic code, -1 otherwise.
func (c Code) ISP() int {
	if !c.Domestic() {
		return -1
	}
	return int(c & MaskISP)
}

// Country returns the country-level part of c: MaskDomestic for every
// domestic code, the domain for the others.
func (c Code) Country() Code {
	if c.Domestic() {
		return MaskDomestic
	}
	return c & MaskCountry
}

func domesticCode(region, province, city, isp int) Code {
	// city 0..31 spans the 2 area bits and the 3 city bits; county stays 0.
	return MaskDomestic | Code(region)<<13 | Code(province)<<10 | Code(city)<<5 | Code(isp)
}

func (c Code) domesticParts() (region, province, city, county, isp int) {
	return int(c>>13) & 3, int(c>>10) & 7, int(c>>5) & 31, int(c>>3) & 3, int(c) & 7
}

func otherCode(domain, locality int) Code {
	return Code(domain)<<7 | Code(locality)
}

func (c Code) otherParts() (domain, locality int) {
	return int(c>>7) & 0xFF, int(c & MaskLocality)
}
