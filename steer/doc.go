// Package steer is the content steering server: it turns the scheduler's
// score table (package score, docs/SCORES.md) into HLS Content Steering
// manifests (draft-pantos-hls-rfc8216bis, "Content Steering":
// VERSION, TTL, RELOAD-URI, PATHWAY-PRIORITY) and DASH-IF content steering
// responses (SERVICE-LOCATION-PRIORITY), one pathway per CDN vendor, so
// that players follow the scheduler's per-region split without an SDK.
// docs/STEERING.md is the user's guide.
//
// The pure core is Compile (a table → per-region draw state) and
// Snapshot.Priority / Snapshot.AppendManifest (a session's order and its
// manifest). The order is a weighted draw without replacement, the
// region's ratios as weights, made deterministic by hashing the session
// id: weighted rendezvous hashing (draw.go), so a session keeps its order
// while the ratios stay, and when they change only the sessions the new
// split must move change their first pathway.
//
// handler.go serves GET /steer/hls and /steer/dash (public: players send
// no bearer token), source.go pulls the table from `qoscope serve` or reads
// a file, run.go is `qoscope steer`.
package steer
