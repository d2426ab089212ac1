package schemas

// A hand-written RFC 3339 parser: time.Parse allocates a zone for every
// numeric offset and accepts forms RFC 3339 does not (e.g. a missing zone
// is an error there too, but with a less helpful message).

const reasonZone = "RFC 3339 time needs a zone (Z or ±hh:mm)"

func digits2(b []byte, i int) (int, bool) {
	a, c := b[i], b[i+1]
	if a < '0' || a > '9' || c < '0' || c > '9' {
		return 0, false
	}
	return int(a-'0')*10 + int(c-'0'), true
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d (proleptic
// Gregorian), after Howard Hinnant's algorithm.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := m - 3
	if m <= 2 {
		mp = m + 9
	}
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// parseRFC3339 parses YYYY-MM-DDTHH:MM:SS[.frac](Z|±hh:mm) (T and Z in
// either case) into Unix milliseconds; digits beyond milliseconds are
// truncated. It returns a reason on failure.
func parseRFC3339(s []byte) (int64, string) {
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return 0, reasonTime
	}
	y1, ok1 := digits2(s, 0)
	y2, ok2 := digits2(s, 2)
	mo, ok3 := digits2(s, 5)
	d, ok4 := digits2(s, 8)
	h, ok5 := digits2(s, 11)
	mi, ok6 := digits2(s, 14)
	sec, ok7 := digits2(s, 17)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
		return 0, reasonTime
	}
	y := y1*100 + y2
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || sec > 59 {
		return 0, "invalid RFC 3339 time: date or time out of range"
	}
	i := 19
	ms := 0
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i-start < 3 {
				ms = ms*10 + int(s[i]-'0')
			}
			i++
		}
		switch n := i - start; {
		case n == 0:
			return 0, reasonTime
		case n == 1:
			ms *= 100
		case n == 2:
			ms *= 10
		}
	}
	if i >= len(s) {
		return 0, reasonZone
	}
	off := 0
	switch s[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(s)-i != 6 || s[i+3] != ':' {
			return 0, reasonTime
		}
		oh, okh := digits2(s, i+1)
		om, okm := digits2(s, i+4)
		if !okh || !okm || oh > 23 || om > 59 {
			return 0, reasonTime
		}
		off = oh*3600 + om*60
		if s[i] == '-' {
			off = -off
		}
		i += 6
	default:
		return 0, reasonTime
	}
	if i != len(s) {
		return 0, reasonTime
	}
	secs := daysFromCivil(y, mo, d)*86400 + int64(h*3600+mi*60+sec-off)
	return secs*1000 + int64(ms), ""
}
