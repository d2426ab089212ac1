// Package cmcd decodes Common Media Client Data (CTA-5004 v1 and v2: the
// CMCD query parameter, the CMCD-Object/-Request/-Session/-Status headers,
// and v2 event-mode bodies) and maps it onto qoscope's client events.
// Everything here is pure: bytes in, typed values out, no I/O.
//
// The syntax accepted, the custom keys (com.qoscope-uid, ...) and the
// mapping table from CMCD keys to events are documented in README.md.
package cmcd
