package ipdb

import "strings"

// Big regions of mainland China as coded in bits 14-13 of a domestic code.
// The four-way split follows how CDN and carrier capacity is usually planned
// (north = the former Netcom footprint, south/central = Telecom's), with the
// 3-bit province field forcing at most eight provinces per region.
const (
	RegionNorth   = 0
	RegionCentral = 1
	RegionSouth   = 2
	RegionWest    = 3
)

// RegionNames is indexed by the region bits.
var RegionNames = [4]string{"north", "central", "south", "west"}

type provinceInfo struct {
	name    string // canonical name used in events: lowercase pinyin
	region  int
	index   int      // position within the region: the 3 province bits
	aliases []string // matched after normalizeKey
}

// mainland lists the 31 mainland provincial-level divisions in code order.
// Within a region, neighbours are adjacent so that close codes are close on
// the map. Hong Kong, Macau and Taiwan are not here: their networks and
// carriers are separate from the mainland ones, so they are coded in the
// other half (see specialDomains) while still named country "cn".
var mainland = [...]provinceInfo{
	{"beijing", RegionNorth, 0, []string{"北京", "北京市"}},
	{"tianjin", RegionNorth, 1, []string{"天津", "天津市"}},
	{"hebei", RegionNorth, 2, []string{"河北", "河北省"}},
	{"shanxi", RegionNorth, 3, []string{"山西", "山西省"}},
	{"neimenggu", RegionNorth, 4, []string{"内蒙古", "内蒙古自治区", "innermongolia", "neimongol"}},
	{"liaoning", RegionNorth, 5, []string{"辽宁", "辽宁省"}},
	{"jilin", RegionNorth, 6, []string{"吉林", "吉林省"}},
	{"heilongjiang", RegionNorth, 7, []string{"黑龙江", "黑龙江省"}},

	{"shandong", RegionCentral, 0, []string{"山东", "山东省"}},
	{"henan", RegionCentral, 1, []string{"河南", "河南省"}},
	{"hubei", RegionCentral, 2, []string{"湖北", "湖北省"}},
	{"hunan", RegionCentral, 3, []string{"湖南", "湖南省"}},
	{"anhui", RegionCentral, 4, []string{"安徽", "安徽省"}},
	{"jiangsu", RegionCentral, 5, []string{"江苏", "江苏省"}},
	{"shanghai", RegionCentral, 6, []string{"上海", "上海市"}},
	{"zhejiang", RegionCentral, 7, []string{"浙江", "浙江省"}},

	{"fujian", RegionSouth, 0, []string{"福建", "福建省"}},
	{"jiangxi", RegionSouth, 1, []string{"江西", "江西省"}},
	{"guangdong", RegionSouth, 2, []string{"广东", "广东省"}},
	{"hainan", RegionSouth, 3, []string{"海南", "海南省"}},
	{"guangxi", RegionSouth, 4, []string{"广西", "广西壮族自治区", "广西自治区"}},
	{"guizhou", RegionSouth, 5, []string{"贵州", "贵州省"}},
	{"yunnan", RegionSouth, 6, []string{"云南", "云南省"}},

	{"chongqing", RegionWest, 0, []string{"重庆", "重庆市"}},
	{"sichuan", RegionWest, 1, []string{"四川", "四川省"}},
	{"xizang", RegionWest, 2, []string{"西藏", "西藏自治区", "tibet"}},
	{"shaanxi", RegionWest, 3, []string{"陕西", "陕西省"}},
	{"gansu", RegionWest, 4, []string{"甘肃", "甘肃省"}},
	{"qinghai", RegionWest, 5, []string{"青海", "青海省"}},
	{"ningxia", RegionWest, 6, []string{"宁夏", "宁夏回族自治区", "宁夏自治区"}},
	{"xinjiang", RegionWest, 7, []string{"新疆", "新疆维吾尔自治区", "新疆自治区"}},
}

// Special domains of the non-domestic half that belong to country "cn".
// Their domain numbers are fixed so their codes are the same in every table.
const (
	domainUnknown    = 0 // code 0: not in the table
	domainCNNoProv   = 1 // mainland range whose province is unknown
	domainHongKong   = 2
	domainMacau      = 3
	domainTaiwan     = 4
	firstFreeDomain  = 5
	maxDomain        = 255
	countryOverflow  = "other" // name of domain 255 when more countries than fit
	countryChina     = "cn"
	provinceHongKong = "hongkong"
	provinceMacau    = "macau"
	provinceTaiwan   = "taiwan"
)

var specialProvinces = [...]provinceInfo{
	{provinceHongKong, -1, domainHongKong, []string{"香港", "香港特别行政区", "hk", "hongkongsar"}},
	{provinceMacau, -1, domainMacau, []string{"澳门", "澳门特别行政区", "macao", "mo", "macaosar", "macausar"}},
	{provinceTaiwan, -1, domainTaiwan, []string{"台湾", "台湾省", "tw"}},
}

// ISP numbers of a domestic code (its low 3 bits). 0 is unknown; a named
// carrier outside the list is ISPOther, counted by the builder.
const (
	ISPUnknown  = 0
	ISPTelecom  = 1
	ISPUnicom   = 2
	ISPMobile   = 3
	ISPCernet   = 4
	ISPBroadnet = 5
	ISPDrPeng   = 6
	ISPOther    = 7
)

// ISPNames is indexed by the ISP bits of a domestic code.
var ISPNames = [8]string{"", "telecom", "unicom", "mobile", "cernet", "broadnet", "drpeng", "other"}

var ispAliases = map[string]int{
	"telecom": ISPTelecom, "chinatelecom": ISPTelecom, "ct": ISPTelecom, "chinanet": ISPTelecom, "电信": ISPTelecom, "中国电信": ISPTelecom,
	"unicom": ISPUnicom, "chinaunicom": ISPUnicom, "cu": ISPUnicom, "netcom": ISPUnicom, "cnc": ISPUnicom, "联通": ISPUnicom, "中国联通": ISPUnicom, "网通": ISPUnicom,
	// China Tietong was folded into China Mobile, so its ranges are Mobile's.
	"mobile": ISPMobile, "chinamobile": ISPMobile, "cm": ISPMobile, "cmcc": ISPMobile, "cmnet": ISPMobile, "tietong": ISPMobile, "移动": ISPMobile, "中国移动": ISPMobile, "铁通": ISPMobile,
	"cernet": ISPCernet, "edu": ISPCernet, "education": ISPCernet, "教育网": ISPCernet,
	"broadnet": ISPBroadnet, "cbn": ISPBroadnet, "chinabroadnet": ISPBroadnet, "广电": ISPBroadnet, "广电网": ISPBroadnet, "中国广电": ISPBroadnet,
	"drpeng": ISPDrPeng, "greatwall": ISPDrPeng, "gwbn": ISPDrPeng, "鹏博士": ISPDrPeng, "长城宽带": ISPDrPeng, "长城": ISPDrPeng,
	"other": ISPOther,
}

var countryAliases = map[string]string{
	"cn": countryChina, "china": countryChina, "chn": countryChina, "prc": countryChina, "中国": countryChina,
}

// provinceByKey maps every canonical name and alias (after normalizeKey) to
// its province; mainlandByBits maps region and province bits back to it.
var (
	provinceByKey, mainlandByBits = indexProvinces()
)

func indexProvinces() (map[string]*provinceInfo, *[4][8]*provinceInfo) {
	byKey := map[string]*provinceInfo{}
	var byBits [4][8]*provinceInfo
	add := func(p *provinceInfo) {
		byKey[p.name] = p
		for _, a := range p.aliases {
			byKey[normalizeKey(a)] = p
		}
	}
	for i := range mainland {
		add(&mainland[i])
		byBits[mainland[i].region][mainland[i].index] = &mainland[i]
	}
	for i := range specialProvinces {
		add(&specialProvinces[i])
	}
	return byKey, &byBits
}

// normalizeKey folds case and drops spaces, hyphens and underscores so that
// "Inner Mongolia", "inner_mongolia" and "InnerMongolia" match.
func normalizeKey(s string) string {
	s = strings.TrimSpace(s)
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == ' ' || r == '-' || r == '_' || r == '\t':
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r + ('a' - 'A'))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// lookupProvince resolves a province name or alias; nil if unknown.
func lookupProvince(s string) *provinceInfo {
	return provinceByKey[normalizeKey(s)]
}

// lookupISP returns the ISP number of a carrier name: ISPUnknown for "",
// ISPOther for a name outside the list.
func lookupISP(s string) int {
	k := normalizeKey(s)
	if k == "" {
		return ISPUnknown
	}
	if n, ok := ispAliases[k]; ok {
		return n
	}
	return ISPOther
}

// Provinces returns the canonical names of the 34 provincial-level
// divisions: the 31 mainland ones in code order, then hongkong, macau, taiwan.
func Provinces() []string {
	out := make([]string, 0, len(mainland)+len(specialProvinces))
	for _, p := range mainland {
		out = append(out, p.name)
	}
	for _, p := range specialProvinces {
		out = append(out, p.name)
	}
	return out
}

// RegionOf returns the big region ("north", "central", "south", "west") of a
// mainland province name or alias, and "" for anything else (including
// hongkong, macau and taiwan, which are outside the four mainland regions).
// The GSLB falls back city → province → big region → country with it.
func RegionOf(province string) string {
	p := lookupProvince(province)
	if p == nil || p.region < 0 {
		return ""
	}
	return RegionNames[p.region]
}
