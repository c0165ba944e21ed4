// Package tls builds the *crypto/tls.Config values for Switchyard's
// client-facing listeners (Server) and for its connections to Redis and to
// the Sentinels (Client), and keeps their certificates current by
// re-reading the PEM files while the proxy runs.
//
// # Naming
//
// The package is named after its noun and so shadows crypto/tls. Inside it,
// crypto/tls is imported as stdtls; callers import this package as sytls:
//
//	import (
//		stdtls "crypto/tls"
//		sytls "github.com/pnats/switchyard/tls"
//	)
//
//	srv, err := sytls.NewServer(sytls.ServerConfig{CertFile: c, KeyFile: k}, log)
//	ln = stdtls.NewListener(ln, srv.Config())
//
// so that at a call site "stdtls" is always the standard library and
// "sytls" always Switchyard's loader, and neither reads as the other.
//
// # Reloading
//
// Server.Config and Client.Config return configs whose certificate is
// looked up per handshake (GetConfigForClient, GetClientCertificate). A
// reload swaps one pointer: new handshakes get the new certificate and CA
// pool, established connections keep the keys they negotiated. Run checks
// the files every ReloadInterval by hashing their content as read through
// any symlinks, because cert-manager and the kubelet replace a Secret volume
// by swapping a "..data" symlink, which leaves the visible paths' own
// metadata unchanged. A file set that fails to load (unreadable, not PEM, a
// key that does not match its certificate, or a half-finished rotation)
// leaves the previous certificate in use; the failure is logged once per
// distinct content and the next change is tried again.
//
// # What this package must never do
//
//   - log or put into an error any key material or password: logs name
//     files, subjects, serial numbers and expiry dates, nothing more;
//   - fall back silently to plaintext or to unverified TLS: a file that is
//     missing or wrong stops NewServer/NewClient with an error naming the
//     field and file; client-certificate verification is only ever against
//     ClientCAFile (never the system roots); skipping server verification
//     takes an explicit ClientConfig.InsecureSkipVerify;
//   - accept TLS older than 1.2;
//   - outlive Run: it starts no goroutines of its own and returns when its
//     context ends.
//
// Cipher suites, curves and session tickets are Go's defaults: crypto/tls
// prefers forward-secret AEAD suites, drops weak ones as Go releases
// (without a change here), and TLS 1.3 suites are not configurable anyway.
// A list pinned here would only age.
//
// It imports nothing else from this module.
package tls
